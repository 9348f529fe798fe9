"""stylegan_trainer: a StyleGAN2 trainer in PyTorch, from the papers.

The same code runs as one CPU process, as several local ranks under torchrun (gloo), and
on many GPU nodes (nccl). Networks, loss, augmentation and the training loop live in
separate modules; ``commands`` holds the click commands the ``stylegan`` CLI exposes.
"""

__version__ = "0.1.0"
