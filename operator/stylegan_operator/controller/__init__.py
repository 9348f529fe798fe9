"""The running operator: kopf handlers, settings, the process runner and its metrics.

Wires kopf events to ``reconcile`` and ``kube``; holds no arithmetic of its own. May import
every operator layer below it; only ``cli`` imports it.
"""
