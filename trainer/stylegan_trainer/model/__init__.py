"""The networks and what trains them: layers (``ops``), generator and discriminator, loss, ADA.

Pure PyTorch modules and functions. Imports torch and ``stylegan_common`` only; nothing
here reads files, talks to other ranks or knows about the training loop.
"""
