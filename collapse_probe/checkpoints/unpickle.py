"""A restricted unpickler: plain data is rebuilt, every other class becomes an inert placeholder.

``torch.load(weights_only=True)`` refuses the numpy scalars every DINO-family optimizer state
holds (``param_group["lr"]`` set from a numpy schedule), so a user's own checkpoint cannot be
read without full pickle, which can run code. This module gives ``torch.load`` a pickle module
whose ``find_class`` never imports anything outside a fixed table:

- torch's own tensor and storage rebuild functions (the set ``weights_only`` allows);
- numpy scalars, dtypes and arrays of numbers, rebuilt by our code (numpy 1.x ``numpy.core``
  and 2.x ``numpy._core`` names), never through numpy's pickle entry points;
- ``argparse.Namespace``, ``pathlib`` paths, ``collections`` containers, builtin value types;
- config containers training code pickles (OmegaConf ``DictConfig`` / ``ListConfig`` of
  hydra and solo-learn runs, Lightning's ``AttributeDict``), rebuilt as plain dicts and lists
  without importing their packages.

Any other global is answered with a :class:`Placeholder` subclass named after it: calling it,
``__new__``, ``__setstate__``, item and list assignment only record their arguments. Nothing
is imported, constructed or called, so a payload (``os.system``, ``builtins.eval``,
``subprocess.Popen``) is data and never runs. The names replaced are kept for the report.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import collections
import io
import pathlib
import pickle
from typing import Any

import numpy as np

__all__ = ["Placeholder", "RestrictedPickle", "ConfigDict", "ConfigList"]

#: Encodings ``_codecs.encode`` may use: protocol-2 pickles store ``bytes`` as latin-1 text.
_BYTE_ENCODINGS = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "utf-8", "utf8",
                             "ascii"})


class Placeholder:
    """Stands in for an object of a class that is not imported.

    Attributes (of instances):
        args: positional arguments the pickle passed (REDUCE / NEWOBJ).
        kwargs: keyword arguments (NEWOBJ_EX).
        state: what BUILD passed (``__setstate__``), or None.
        items: key/value pairs set on it (SETITEMS on a dict subclass).
        elements: values appended to it (APPENDS on a list subclass).

    Class attributes ``module`` and ``qualname`` name the replaced global.
    """

    module = ""
    qualname = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:  # noqa: D102
        obj = object.__new__(cls)
        obj.__dict__.update(args=args, kwargs=kwargs, state=None, items={}, elements=[])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # __new__ recorded everything: never run anything else.
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__["items"][key] = value

    def append(self, value: Any) -> None:  # noqa: D102 - pickle's APPEND
        self.__dict__["elements"].append(value)

    def extend(self, values: Any) -> None:  # noqa: D102 - pickle's APPENDS
        self.__dict__["elements"].extend(values)

    def __reduce__(self) -> Any:
        # Writing a placeholder back would silently replace the original object.
        raise pickle.PicklingError(f"{self.full_name()} was not loaded and cannot be saved")

    @classmethod
    def full_name(cls) -> str:
        """``module.qualname`` of the replaced global."""
        return f"{cls.module}.{cls.qualname}"

    def __repr__(self) -> str:
        return f"<not loaded: {self.full_name()}>"


def _placeholder_class(module: str, name: str) -> type[Placeholder]:
    # A real class (not an instance) so that NEWOBJ's ``cls.__new__(cls)`` works on it.
    return type(name.rpartition(".")[2] or "Placeholder", (Placeholder,),
                {"module": module, "qualname": name, "__module__": __name__})


# --- numpy, rebuilt from its pickled parts by plain constructors -------------------------

def _dtype(spec: Any, align: Any = False, copy: Any = True) -> Any:
    """``numpy.dtype`` as pickled: a type string (``'f8'``, ``'V16'``); always a fresh copy
    so that BUILD's ``__setstate__`` (byte order, fields) never touches numpy's singletons."""
    if not isinstance(spec, str) or spec[:1] == "O" or len(spec) > 16:
        return _placeholder_class("numpy", "dtype")(spec, align, copy)
    return np.dtype(spec, align=bool(align), copy=True)


def _scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar(dtype, bytes)``: one value of a numeric dtype."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        return _placeholder_class("numpy.core.multiarray", "scalar")(dtype, data)
    return np.frombuffer(data, dtype=dtype, count=1)[0].copy()


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> Any:
    """``numpy.core.multiarray._reconstruct``: an empty ndarray BUILD fills from raw bytes."""
    if subtype is not np.ndarray:
        return _placeholder_class("numpy.core.multiarray", "_reconstruct")(subtype, shape, typecode)
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _codecs_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> Any:
    """``_codecs.encode``: how protocol 2 stores ``bytes``; only the byte encodings."""
    if isinstance(text, str) and isinstance(encoding, str) and encoding.lower() in _BYTE_ENCODINGS:
        return text.encode(encoding, "strict")
    return _placeholder_class("_codecs", "encode")(text, encoding, errors)


# --- config containers, read as plain data ------------------------------------------------

class _ConfigNode(Placeholder):
    """An OmegaConf value node (``AnyNode``, ``IntegerNode``, ...) or metadata: its state is kept;
    the container holding it reads its ``_val``."""


def _node_value(value: Any) -> Any:
    if isinstance(value, _ConfigNode):
        state = value.state if isinstance(value.state, dict) else {}
        return state.get("_val")
    return value


class ConfigDict(dict):
    """An OmegaConf ``DictConfig`` read as a plain dict of its values (``OmegaConf`` is never
    imported: BUILD passes the pickled ``_content`` here and nothing else is run)."""

    def __setstate__(self, state: Any) -> None:
        content = state.get("_content") if isinstance(state, dict) else None
        if isinstance(content, dict):
            self.update({key: _node_value(value) for key, value in content.items()})


class ConfigList(list):
    """An OmegaConf ``ListConfig`` read as a plain list of its values."""

    def __setstate__(self, state: Any) -> None:
        content = state.get("_content") if isinstance(state, dict) else None
        if isinstance(content, list):
            self.extend(_node_value(value) for value in content)


def _config_class(module: str, name: str) -> type:
    if module == "omegaconf.dictconfig" and name == "DictConfig":
        return ConfigDict
    if module == "omegaconf.listconfig" and name == "ListConfig":
        return ConfigList
    return type(name, (_ConfigNode,), {"module": module, "qualname": name,
                                       "__module__": __name__})


class _AttributeDict(dict):
    """Lightning's ``AttributeDict`` (a dict with attribute access) as a plain dict."""


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    """``torch._tensor._rebuild_from_type_v2`` that never converts to an unknown class: a tensor
    of a replaced subclass stays a placeholder (so a head stored that way is refused)."""
    import torch

    if isinstance(new_type, type) and issubclass(new_type, Placeholder):
        return new_type(func, args, state)
    if isinstance(func, type) and issubclass(func, Placeholder):
        return func(*args) if isinstance(args, tuple) else func(args)
    return torch._tensor._rebuild_from_type_v2(func, new_type, args, state)


def _safe_table() -> dict[tuple[str, str], Any]:
    import torch._weights_only_unpickler as weights_only

    table: dict[tuple[str, str], Any] = {}
    # torch's own table: tensor/storage rebuild functions, dtypes, devices, layouts.
    for full_name, obj in weights_only._get_allowed_globals().items():
        module, _, name = full_name.rpartition(".")
        table[(module, name)] = obj
    table[("torch._tensor", "_rebuild_from_type_v2")] = _rebuild_from_type_v2
    table[("_codecs", "encode")] = _codecs_encode
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(core, "scalar")] = _scalar
        table[(core, "_reconstruct")] = _reconstruct
    table[("numpy", "dtype")] = _dtype
    table[("numpy", "ndarray")] = np.ndarray
    for name in dir(np.dtypes):  # numpy >= 1.25 dtype classes: only used as markers
        if name.endswith("DType") and name != "ObjectDType":
            table[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    table[("argparse", "Namespace")] = argparse.Namespace
    for name in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath",
                 "PureWindowsPath"):
        table[("pathlib", name)] = getattr(pathlib, name)
        table[("pathlib._local", name)] = getattr(pathlib, name)
    for name in ("OrderedDict", "defaultdict", "Counter", "deque"):
        table[("collections", name)] = getattr(collections, name)
    for value_type in (dict, list, tuple, set, frozenset, int, float, complex, str, bytes,
                       bytearray, bool, slice, range):
        table[("builtins", value_type.__name__)] = value_type
    for module in ("pytorch_lightning.utilities.parsing", "lightning.pytorch.utilities.parsing",
                   "lightning_fabric.utilities.data", "lightning.fabric.utilities.data"):
        table[(module, "AttributeDict")] = _AttributeDict
    return table


_TABLE: dict[tuple[str, str], Any] | None = None
#: ``Py_TPFLAGS_IMMUTABLETYPE``: builtin and C types, whose attributes cannot be set.
_IMMUTABLE_TYPE = 1 << 8

#: Modules whose classes are configuration data, read without importing the package.
_CONFIG_MODULES = ("omegaconf.dictconfig", "omegaconf.listconfig", "omegaconf.nodes",
                   "omegaconf.base")
#: Markers OmegaConf metadata pickles (``ref_type=typing.Any``): inert either way.
_INERT_MARKERS = {("typing", "Any"), ("typing", "Optional"), ("typing", "Union"),
                  ("typing", "Dict"), ("typing", "List"), ("typing", "Tuple")}

def _lookup(module: str, name: str) -> Any:
    global _TABLE
    if _TABLE is None:
        _TABLE = _safe_table()
    return _TABLE.get((module, name))


class RestrictedPickle:
    """A pickle *module* for one ``torch.load`` call: records the globals it replaced.

    ``torch.load(path, weights_only=False, pickle_module=RestrictedPickle())`` only ever calls
    ``pickle_module.Unpickler`` and ``pickle_module.load``; both go through
    :meth:`find_class` below.
    """

    __name__ = "collapse_probe.restricted_pickle"

    def __init__(self) -> None:
        self.replaced: set[str] = set()
        #: storage data pointer -> zip record (``data/<key>``), filled as storages load.
        self.records: dict[int, str] = {}
        self._classes: dict[tuple[str, str], type] = {}
        owner = self
        base_slot = pickle.Unpickler.__dict__["persistent_load"]

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:  # noqa: D102
                return owner.find_class(module, name)

            # torch assigns its storage loader here after construction; wrap it to learn
            # which zip record each storage came from (for CRC checks of just those).
            @property
            def persistent_load(self) -> Any:  # noqa: D102
                return base_slot.__get__(self)

            @persistent_load.setter
            def persistent_load(self, function: Any) -> None:
                def load_persistent(saved_id: Any) -> Any:
                    storage = function(saved_id)
                    owner._note_record(saved_id, storage)
                    return storage

                base_slot.__set__(self, load_persistent)

        self.Unpickler: type[pickle.Unpickler] = Unpickler

    def find_class(self, module: str, name: str) -> Any:
        """The allowed object for ``module.name``, or a placeholder class (nothing imported)."""
        module, name = str(module), str(name)
        # Python 2 names (protocol 2 writes ``__builtin__``, ``copy_reg``): mapped as strings.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _lookup(module, name)
        if found is not None:
            return found
        key = (module, name)
        if key not in self._classes:
            if module in _CONFIG_MODULES:
                self._classes[key] = _config_class(module, name)
            else:
                self._classes[key] = _placeholder_class(module, name)
                if key not in _INERT_MARKERS:
                    self.replaced.add(f"{module}.{name}")
        return self._classes[key]

    def snapshot(self) -> dict[type, dict[str, Any]]:
        """The attributes of every allow-listed class whose attributes can be set.

        Pickle's BUILD can ``setattr`` on any object it holds, classes included; nothing runs
        then, but a file could change, say, ``argparse.Namespace`` for the rest of the process.
        :meth:`restore` puts them back.
        """
        global _TABLE
        if _TABLE is None:
            _TABLE = _safe_table()
        classes = {obj for obj in _TABLE.values() if isinstance(obj, type)}
        classes |= {ConfigDict, ConfigList, _AttributeDict, Placeholder, _ConfigNode}
        return {cls: dict(vars(cls)) for cls in classes
                if not (cls.__flags__ & _IMMUTABLE_TYPE)}

    @staticmethod
    def restore(snapshot: dict[type, dict[str, Any]]) -> list[str]:
        """Undo attribute changes made to the classes of ``snapshot``; names of those changed."""
        changed = []
        for cls, before in snapshot.items():
            now = vars(cls)
            if now.keys() == before.keys() and all(now[k] is before[k] for k in before):
                continue
            changed.append(f"{cls.__module__}.{cls.__qualname__}")
            for name in set(now) - set(before):
                delattr(cls, name)
            for name, value in before.items():
                if now.get(name) is not value:
                    try:
                        setattr(cls, name, value)
                    except (AttributeError, TypeError):  # read-only slots (__dict__, __doc__)
                        pass
        return changed

    def _note_record(self, saved_id: Any, storage: Any) -> None:
        if not (isinstance(saved_id, tuple) and len(saved_id) >= 3 and saved_id[0] == "storage"):
            return
        try:
            pointer = storage._untyped_storage.data_ptr()
        except AttributeError:
            return
        if pointer:
            self.records[pointer] = f"data/{saved_id[2]}"

    def load(self, file: io.BufferedIOBase, **kwargs: Any) -> Any:
        """``pickle.load`` through :meth:`find_class`, for torch's legacy-format header."""
        return self.Unpickler(file, **kwargs).load()

    def loads(self, data: bytes, **kwargs: Any) -> Any:
        """``pickle.loads`` through :meth:`find_class`."""
        return self.load(io.BytesIO(data), **kwargs)
