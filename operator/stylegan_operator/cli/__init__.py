"""The ``stylegan`` command line: the lazy click group and the operator-side commands.

Sits on top: may import any layer of either program, always lazily (``main.COMMANDS``),
so ``stylegan --help`` and the operator's start never import torch.
"""
