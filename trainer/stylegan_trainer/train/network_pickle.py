"""Reading a published StyleGAN2-ADA PyTorch network pickle without running any of its code.

The published networks (FFHQ, AFHQ, MetFaces, ... ``.pkl``) are plain ``pickle`` files of a
dict ``{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}``. Their modules are
"persistent" classes: each pickles as a call of ``torch_utils.persistence.
_reconstruct_persistent_obj(meta)``, where ``meta`` holds the class name, the *source code of
the module that defined it* and the object's state (the ``__dict__`` of a ``torch.nn.Module``:
``_parameters``, ``_buffers``, ``_modules`` and plain attributes). Loading such a pickle the
ordinary way executes that source code, and ``pickle`` itself calls whatever a file names, so
an ordinary load of a file from the internet can run anything.

:func:`read_network_pickle` reads it with a restricted unpickler instead. ``find_class``, the
only way a pickle reaches code, returns:

* torch's tensor rebuilding, wrapped: ``torch._utils._rebuild_tensor_v2``,
  ``_rebuild_parameter`` (no backward hooks, no extra state), and storages from
  ``torch.storage._load_from_bytes``, whose bytes are a small ``torch.save`` file read back with
  ``torch.load(weights_only=True)`` (torch's own restricted loader), never the full ``pickle``;
* data containers: ``collections.OrderedDict``, ``builtins.set`` and ``frozenset``;
* for ``_reconstruct_persistent_obj`` a stand-in that keeps the class name and the state and
  never looks at, let alone executes, the source code;
* for any class of the published code's own packages (``training``, ``torch_utils``,
  ``dnnlib``: ``dnnlib.util.EasyDict`` among them), and for numpy's scalars, dtypes and arrays
  (the published layers keep gains such as ``np.sqrt(2)`` as plain attributes), a
  :class:`PickledObject` that records the module, the name, the arguments and the state, and
  does nothing else: only tensors are loaded, so nothing else needs rebuilding.

Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ``copyreg`` helpers,
numpy, ...) is refused before it is called: :class:`ConfigError` (exit 64) naming the class
and the file, the words "nothing in it was run". What comes back are plain dicts of tensors,
one per network, keyed as the published ``state_dict()`` would be (``mapping.fc0.weight``,
``synthesis.b4.const``, ``b4.out.weight``); mapping them onto this project's modules is
:mod:`stylegan_trainer.train.init_from`.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch

from stylegan_common.errors import ConfigError

NETWORK_KEYS = ("G", "D", "G_ema")
PUBLISHED_PACKAGES = ("training", "torch_utils", "dnnlib")
PERSISTENT_RECONSTRUCTOR = ("torch_utils.persistence", "_reconstruct_persistent_obj")
# The published layers keep numpy values among their plain attributes (gains such as
# ``np.sqrt(2)`` are numpy float64 scalars; StyleGAN3 keeps sizes as arrays). Only tensors are
# ever loaded, so these are recorded as stand-ins; no numpy code runs either.
RECORDED_NUMPY = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("scalar", "_reconstruct")
) | {("numpy", "dtype"), ("numpy", "ndarray")}
MAX_MODULE_DEPTH = 32  # the published G nests 4 deep; deeper is a malformed or hostile file


class PickledObject(dict):  # type: ignore[type-arg]
    """Stand-in for an instance of a class of the published code: it records, never runs.

    A dict, because ``dnnlib.util.EasyDict`` (a dict subclass) fills itself with the pickle's
    SETITEMS; ``__init__`` and ``__setstate__`` only keep what they are given.
    """

    # Class-level defaults: an instance made by NEWOBJ (``cls.__new__``) skips ``__init__``.
    pickled_module = ""
    pickled_name = ""
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = {}
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.pickled_module}.{self.pickled_name} (not loaded)>"


class PersistentObject(PickledObject):
    """What ``_reconstruct_persistent_obj(meta)`` would have rebuilt: its class name and state."""

    pickled_module = PERSISTENT_RECONSTRUCTOR[0]


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


def _stand_in(module: str, name: str) -> type[PickledObject]:
    return type(name, (PickledObject,), {"pickled_module": module, "pickled_name": name})


def _persistent_object(meta: Any) -> PersistentObject:
    if not isinstance(meta, Mapping) or meta.get("type") != "class":
        raise pickle.UnpicklingError("a persistent object without type 'class'")
    obj = PersistentObject()
    obj.pickled_name = str(meta.get("class_name"))
    obj.state = meta.get("state")  # meta["module_src"] is ignored: it is code
    return obj


def _no_hooks(hooks: Any) -> None:
    if hooks:  # a hook is called at backward time: nothing here may be callable
        raise pickle.UnpicklingError("a tensor with backward hooks")


def _rebuild_tensor(
    storage: Any, offset: int, size: Any, stride: Any, requires_grad: Any = False,
    backward_hooks: Any = None, metadata: Any = None,
) -> torch.Tensor:  # fmt: skip
    if not isinstance(storage, torch.storage.TypedStorage | torch.UntypedStorage):
        raise pickle.UnpicklingError(f"a tensor over {type(storage).__name__}, not a storage")
    _no_hooks(backward_hooks)
    rebuild = torch._utils._rebuild_tensor_v2
    return rebuild(storage, int(offset), tuple(size), tuple(stride), False, OrderedDict())


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> torch.Tensor:  # fmt: skip
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"a parameter of {type(data).__name__}, not a tensor")
    _no_hooks(backward_hooks)
    if state:
        raise pickle.UnpicklingError("a parameter with extra attributes")
    return data  # the values are all we copy; a plain tensor carries them


def _load_storage(data: Any) -> Any:
    if not isinstance(data, bytes | bytearray):
        raise pickle.UnpicklingError(f"storage bytes of {type(data).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation: the published format
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    if not isinstance(storage, torch.storage.TypedStorage | torch.UntypedStorage):
        raise pickle.UnpicklingError(f"storage bytes holding {type(storage).__name__}")
    return storage


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    PERSISTENT_RECONSTRUCTOR: _persistent_object,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose every global is on the allow list or a recording stand-in."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        published = module.split(".")[0] in PUBLISHED_PACKAGES
        recorded = (published and module != PERSISTENT_RECONSTRUCTOR[0]) or (
            (module, name) in RECORDED_NUMPY
        )
        if recorded:
            return _stand_in(module, name)
        raise RefusedGlobal(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a persistent id (a torch.save file, not a network pickle)")


def unpickle(data: bytes, source: str, field: str = "init_from") -> Any:
    """The object in ``data`` with nothing of it run; ``ConfigError`` naming ``source``."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as exc:
        raise ConfigError(
            f"{field}: {source} is refused: it asks to call {exc.qualified}, which is neither a "
            "tensor container nor a class of the published StyleGAN2-ADA code; nothing in it "
            "was run"
        ) from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
            IndexError, KeyError, RuntimeError, MemoryError) as exc:  # fmt: skip
        raise ConfigError(
            f"{field}: {source} is not a readable network pickle ({type(exc).__name__}: {exc})"
        ) from None


def _state_of(obj: Any) -> Mapping[str, Any] | None:
    state = obj.state if isinstance(obj, PickledObject) else None
    return state if isinstance(state, Mapping) and "_parameters" in state else None


def module_tensors(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """The parameters and persistent buffers of a pickled module tree, as ``state_dict()``
    names them (``synthesis.b4.conv1.weight``)."""
    state = _state_of(obj)
    if state is None:
        raise ValueError(f"{prefix or 'the network'} is not a torch module")
    if depth > MAX_MODULE_DEPTH:
        raise ValueError(f"modules nest deeper than {MAX_MODULE_DEPTH} levels at {prefix}")
    skipped = state.get("_non_persistent_buffers_set") or set()
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skipped):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f"{prefix}{name} is a {type(tensor).__name__}, not a tensor")
            out[f"{prefix}{name}"] = tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_tensors(child, f"{prefix}{name}.", depth + 1))
    return out


def read_network_pickle(
    data: bytes, source: str, field: str = "init_from"
) -> dict[str, dict[str, torch.Tensor]]:
    """``{'G': tensors, 'D': tensors, 'G_ema': tensors}`` of a published network pickle.

    ``ConfigError`` naming ``source``: refused (a callable off the allow list), unreadable,
    or not the published layout (a dict with G, D and G_ema modules).
    """
    top = unpickle(data, source, field)
    if not isinstance(top, dict) or isinstance(top, PickledObject):
        raise ConfigError(
            f"{field}: {source} holds a {type(top).__name__}, not the dict of a StyleGAN2-ADA "
            "network pickle (G, D, G_ema)"
        )
    missing = [key for key in NETWORK_KEYS if key not in top]
    if missing:
        raise ConfigError(
            f"{field}: {source} lacks {', '.join(missing)} (it holds {', '.join(map(str, top))}); "
            "a StyleGAN2-ADA network pickle has G, D and G_ema"
        )
    networks: dict[str, dict[str, torch.Tensor]] = {}
    for key in NETWORK_KEYS:
        try:
            networks[key] = module_tensors(top[key])
        except ValueError as exc:
            raise ConfigError(
                f"{field}: {source}: {key} is not a StyleGAN2-ADA PyTorch network ({exc}); "
                "TensorFlow pickles of the original StyleGAN2 are not read"
            ) from None
    return networks
