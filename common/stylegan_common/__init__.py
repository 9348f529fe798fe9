"""stylegan_common: what both programs need: errors and exit codes, Kubernetes API errors,
checkpoint storage (local, gs://), trainer metric names, one-line config validation errors.
It may import neither program, and never torch: the operator installs without it.
"""
