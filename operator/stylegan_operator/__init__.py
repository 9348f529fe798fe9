"""stylegan_operator: the kopf operator that turns StyleGANRun resources into GPU jobs.

Layers import only downwards: ``api`` <- ``cost``, ``reconcile`` (pure) <- ``kube`` <-
``controller`` <- ``cli``; it may import ``stylegan_common``, never ``stylegan_trainer``.
"""

__version__ = "0.1.0"
