"""Training images: zip/folder datasets, conversion, batch loading and gs:// download.

May import ``stylegan_common`` (errors, the GCS client); never ``model`` or ``train``.
"""
