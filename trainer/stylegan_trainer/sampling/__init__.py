"""Faces from a generator: latent sampling, truncation, style mixing and image grids.

May import ``model`` and ``stylegan_common``; never ``train``.
"""
