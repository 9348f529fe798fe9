"""stylegan_trainer: a StyleGAN2 trainer in PyTorch, from the papers.

``model`` <- ``data``, ``sampling``, ``quality``, ``report`` <- ``train`` <- ``cli``; each
imports only downwards, plus ``stylegan_common``, and never ``stylegan_operator``.
"""

__version__ = "0.1.0"
