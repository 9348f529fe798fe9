"""Reconciliation as pure functions: observe -> decide -> the plan, and the child manifests.

Given what the cluster holds, say what it should hold. May import ``api`` and ``cost``;
never ``kube``, ``controller``, storage or any I/O (the layer test holds it to that).
"""
