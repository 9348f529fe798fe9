"""Money: the price catalog, metering of node-hours, budgets, projection and estimates.

Pure arithmetic on figures the caller supplies. May import ``api`` and ``stylegan_common.
validation``; never ``reconcile``, ``kube`` or ``controller``. Modules: docs/architecture.md.
"""
