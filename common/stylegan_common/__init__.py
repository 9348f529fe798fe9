"""stylegan_common: what both programs need: errors and exit codes, reading Kubernetes API errors,
checkpoint storage (local, gs://) and the names of the trainer's metrics.
It may import neither program, and never torch: the operator installs without it.
"""
