"""The StyleGANRun resource: its spec and status models, validation rules and the CRD.

Pure data and checks. It may import nothing of ours, so every other layer can depend on it.
"""
