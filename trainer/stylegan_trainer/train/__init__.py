"""The training run: options, presets, the loop and its phases, ranks, checkpoints.

May import ``model``, ``data``, ``sampling``, ``report`` and ``stylegan_common``. Only
``cli`` imports it.
"""
