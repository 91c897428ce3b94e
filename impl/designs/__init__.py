"""The shipped designs, and how a design is named on the command line.

Swapping designs is one line: ``World(config, BackgroundV1)`` instead of ``World(config, Legacy)``.
A user's design is any subclass of :class:`Design`, named ``module:Class``.
"""
from __future__ import annotations

import importlib

from .background_v1 import BackgroundV1
from .base import INTERFACE, Design
from .iterate_sync import IterateSync
from .legacy import Legacy
from .periodic import Periodic
from .qemu_10_1 import Qemu101
from .qemu_11_0 import Qemu110

DESIGNS: dict[str, type[Design]] = {d.name: d for d in (Legacy, Periodic, BackgroundV1, IterateSync, Qemu101,
                                                        Qemu110)}


class DesignError(ValueError):
    """A design name that names nothing, or a class that does not fit the design interface."""


def check_interface(cls) -> type[Design]:
    """Return ``cls`` if it is a usable design class; ``DesignError`` naming what is missing otherwise."""
    if not isinstance(cls, type):
        raise DesignError(f"{cls!r} is not a class")
    missing = [m for m in INTERFACE if not callable(getattr(cls, m, None))]
    if missing:
        raise DesignError(f"{cls.__module__}.{cls.__qualname__} does not fit the design interface: "
                          f"missing method(s) {', '.join(missing)}")
    if not issubclass(cls, Design):
        raise DesignError(f"{cls.__module__}.{cls.__qualname__} must subclass dirtyproof.impl.designs.Design")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise DesignError(f"{cls.__qualname__} has no name")
    return cls


def _load_file(path: str):
    """The module of a design file ``path/to/file.py``, imported once.

    The module is named by its absolute path, so a class from it is ``/abs/file.py:Class`` to
    every consumer (traces, reports, worker processes) and resolves again the same way."""
    import importlib.util
    import os
    import sys

    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise DesignError(f"no such design file: {path}")
    if full in sys.modules:
        return sys.modules[full]
    spec = importlib.util.spec_from_file_location(full, full)
    if spec is None or spec.loader is None:
        raise DesignError(f"cannot load {path} as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[full] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[full]
        raise
    return mod


def resolve(spec: str, extra=None) -> type[Design]:
    """A design class from a shipped name (``periodic``), ``module:Class`` (found on
    ``PYTHONPATH``), ``path/to/file.py:Class``, or a name in ``extra`` (a mapping of more named
    designs: :func:`dirtyproof.checked.resolve` passes the mutant corpus)."""
    if spec in DESIGNS:
        return DESIGNS[spec]
    extra = extra or {}
    if ":" in spec:
        module, _, attr = spec.rpartition(":")
        if not module or not attr:
            raise DesignError(f"{spec!r}: name a design as module:Class or path/to/file.py:Class")
        try:
            mod = _load_file(module) if module.endswith(".py") or "/" in module else importlib.import_module(module)
        except DesignError:
            raise
        except Exception as exc:  # any import failure is the user's input problem
            hint = (" (a module is found on PYTHONPATH: run with PYTHONPATH=<its folder>, or name the file "
                    "as path/to/file.py:Class)" if isinstance(exc, ModuleNotFoundError) else "")
            raise DesignError(f"cannot import module {module!r}: {type(exc).__name__}: {exc}{hint}") from None
        obj = getattr(mod, attr, None)
        if obj is None:
            raise DesignError(f"module {module!r} has no attribute {attr!r}")
        return check_interface(obj)
    if spec in extra:
        return extra[spec]
    if spec.endswith(".py"):
        raise DesignError(f"{spec!r} names a file but no class in it: name a design as {spec}:ClassName")
    raise DesignError(f"unknown design {spec!r} (shipped: {', '.join(DESIGNS)}; or module:Class, or path/to/file.py:Class)")


__all__ = ["DESIGNS", "Design", "DesignError", "Legacy", "Periodic", "BackgroundV1", "IterateSync", "Qemu101",
           "Qemu110",
           "check_interface", "resolve", "INTERFACE"]
