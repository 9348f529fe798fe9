"""Money: the price catalog, metering of node-hours, budgets, projection and estimates.

Pure arithmetic on figures the caller supplies. May import ``api``; never ``reconcile``,
``kube`` or ``controller``. Its modules are listed in docs/architecture.md.
"""
