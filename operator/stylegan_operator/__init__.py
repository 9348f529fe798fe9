"""stylegan_operator: the kopf operator that turns StyleGANRun resources into GPU jobs.

Layers import only downwards: ``api`` (the resource) <- ``cost`` and ``reconcile`` (pure) <-
``kube`` (API calls) <- ``controller`` (kopf wiring) <- ``cli``. It may import
``stylegan_common``, never ``stylegan_trainer`` (docs/architecture.md; tests/unit/foundation).
"""

__version__ = "0.1.0"
