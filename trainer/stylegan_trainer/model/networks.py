"""The StyleGAN2 generator and discriminator (config F), written from the paper: the pair.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958).
The networks are built from the bottom up, one module per part:

* :mod:`~stylegan_trainer.model.config`: :class:`NetworkConfig`, everything that fixes the
  architecture (channels per resolution, mixed precision), and so the checkpoints;
* :mod:`~stylegan_trainer.model.mapping`: z (and c) -> w, with ``w_avg`` for truncation;
* :mod:`~stylegan_trainer.model.generator`: the skip synthesis network and G;
* :mod:`~stylegan_trainer.model.discriminator`: the resnet D with minibatch stddev.

This module builds a fresh (G, D) pair and counts parameters as the papers do. Config F at
1024x1024, z = w = 512, c_dim = 0 has 30,370,060 parameters in G and 29,012,513 in D; the
per-layer sums are in the generator's and the discriminator's module docstrings.
"""

from __future__ import annotations

from torch import nn

from stylegan_trainer.model.config import NetworkConfig
from stylegan_trainer.model.discriminator import Discriminator
from stylegan_trainer.model.generator import Generator


def count_parameters(module: nn.Module) -> int:
    """Trainable tensors' element count (buffers excluded), as the papers report it."""
    return sum(p.numel() for p in module.parameters())


def build_networks(cfg: NetworkConfig) -> tuple[Generator, Discriminator]:
    """A fresh (G, D) pair for ``cfg``; the caller seeds torch beforehand for reproducibility."""
    return Generator(cfg), Discriminator(cfg)
