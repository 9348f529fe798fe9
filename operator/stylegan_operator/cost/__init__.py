"""Money: the price catalog, metering of node-hours, budgets, projection and estimates.

Pure arithmetic on figures the caller supplies. May import ``api``; never ``reconcile``,
``kube`` or ``controller``.

Modules, each importing only those above it:

* ``pricing``: :class:`~stylegan_operator.cost.pricing.CostError`, the price catalog, GPU
  type names, currencies, money and duration formatting.
* ``metering``: what each pod rented and for how long, read from the pods' JSON.
* ``spend``: a run's prices applied to its pods; the spend snapshot and burn rate.
* ``ledger``: the spend kept in the run's status across pod deletions and restarts.
* ``budget``: projection of the final time and cost, budget states, cost of lost work.
* ``calibration``: published training speeds and benchmark files, as calibration points.
* ``scaling``: carrying a speed to another GPU count or GPU type.
* ``estimate``: ``stylegan estimate``'s time and cost of one configuration.
* ``estimate_table``: the estimate's plain-text table and notes.
"""
