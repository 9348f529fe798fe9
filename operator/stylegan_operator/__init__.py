"""stylegan_operator: the kopf operator that turns StyleGANRun resources into GPU jobs.

Layers import only downwards: ``spec`` (models) <- ``render`` (pure manifests) and
``cost`` (pure arithmetic) <- ``kube`` (API calls) <- ``handlers`` (kopf wiring).
``cli`` sits on top of everything and imports lazily so ``stylegan --help`` stays fast.
"""

__version__ = "0.1.0"
