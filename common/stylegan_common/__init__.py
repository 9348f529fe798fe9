"""stylegan_common: what both programs need, the operator and the trainer alike.

Exit codes and errors, the small Kubernetes API helper, checkpoint storage (local, gs://),
and the names of the trainer's metrics. Imports neither program, and never torch.
"""
