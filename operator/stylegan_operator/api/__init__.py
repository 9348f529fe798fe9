"""The StyleGANRun resource: its spec and status models, validation rules and the CRD.

Pure data and checks. Imports nothing of ours (not even ``stylegan_common``), so every
other layer can depend on it.
"""
