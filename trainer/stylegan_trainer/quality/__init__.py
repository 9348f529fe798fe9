"""How good the faces are: FID/KID, a face classifier, precision/recall, memorisation.

May import ``data``, ``sampling`` and ``stylegan_common``; never ``train``.
"""
