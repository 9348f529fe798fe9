"""The trainer's click commands (train, dataset, demo, benchmark, generate, quality, plot).

Top layer of the trainer: may import every trainer package. ``stylegan_operator.cli.main``
loads these lazily, and only when torch is installed.
"""
