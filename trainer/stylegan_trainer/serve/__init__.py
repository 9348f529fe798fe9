"""Serving a run's faces: ``stylegan serve``'s HTTP server, its parameters, its generator source.

May import ``train`` (checkpoint loading), ``sampling``, ``model`` and ``stylegan_common``.
"""
