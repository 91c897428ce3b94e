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

DESIGNS: dict[str, type[Design]] = {d.name: d for d in (Legacy, Periodic, BackgroundV1, IterateSync)}


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


def resolve(spec: str) -> type[Design]:
    """A design class from a shipped name (``periodic``), ``module:Class``, or a mutant name."""
    if spec in DESIGNS:
        return DESIGNS[spec]
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # any import failure is the user's input problem
            raise DesignError(f"cannot import module {module!r}: {exc}") from None
        obj = getattr(mod, attr, None)
        if obj is None:
            raise DesignError(f"module {module!r} has no attribute {attr!r}")
        return check_interface(obj)
    try:
        from dirtyproof.mutants import MUTANTS
    except ImportError:
        MUTANTS = {}
    if spec in MUTANTS:
        return MUTANTS[spec]
    raise DesignError(f"unknown design {spec!r} (shipped: {', '.join(DESIGNS)}; or module:Class)")


__all__ = ["DESIGNS", "Design", "DesignError", "Legacy", "Periodic", "BackgroundV1", "IterateSync",
           "check_interface", "resolve", "INTERFACE"]
