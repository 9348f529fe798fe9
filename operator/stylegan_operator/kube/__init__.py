"""The client side: the calls the operator makes to the Kubernetes API server.

Turns a reconcile plan into requests, and the server's objects into observations. May import
``api``, ``reconcile``, ``cost`` and ``stylegan_common``; never ``controller`` or ``cli``.
"""
