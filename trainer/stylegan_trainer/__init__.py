"""stylegan_trainer: a StyleGAN2 trainer in PyTorch, from the papers.

``model`` (networks, ops, loss, augment) <- ``data``, ``sampling``, ``quality`` <- ``train``
(loop, phases, distributed, checkpoint) and ``report`` <- ``cli``. It may import
``stylegan_common``, never ``stylegan_operator``.
"""

__version__ = "0.1.0"
