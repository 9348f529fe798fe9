"""The trainer's click commands (train, torchrun, dataset, demo, benchmark, generate, quality,
plot) and ``worker_exits``; ``stylegan_operator.cli.main`` loads them lazily, with torch only.

Top layer of the trainer: may import every trainer package.
"""
