"""Checkpoint storage: the object-store protocol and registry (``base``), and its backends.

``local`` (a folder, ``file://``) is imported here; ``gcs`` (``gs://``) is named in the
registry by module path and imported on first use. Backends import ``base``, never the reverse.
"""

from stylegan_common.storage.base import (
    GENERATION_KEY,
    Storage,
    StorageFactory,
    check_name,
    content_type_of,
    decode_pointer,
    open_storage,
    read_local_file,
    register_backend,
)
from stylegan_common.storage.local import LocalStorage

__all__ = [
    "GENERATION_KEY", "LocalStorage", "Storage", "StorageFactory", "check_name",
    "content_type_of", "decode_pointer", "open_storage", "read_local_file", "register_backend",
]
