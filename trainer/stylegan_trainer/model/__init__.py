"""The networks and what trains them: layers (``ops``), generator and discriminator, loss, ADA.

Pure PyTorch. It may import torch and ``stylegan_common`` only: no files, ranks or loop here.
"""
