"""Snapshot and restore of a world's data in place, for steps that move no generator.

A generator cannot be copied, but an environment step (a write, a clock move, a management
command other than ``start``) runs no thread: it only changes data. The explorer therefore
applies such a step to the live world, looks at the result, and puts the data back, object by
object, so that every suspended frame still refers to the same (restored) objects.
"""
from __future__ import annotations

import types

import numpy as np

_KEEP = (int, float, str, bool, bytes, type(None), types.GeneratorType, types.FunctionType,
         types.MethodType, type, types.ModuleType, range)


def _frozen(v) -> bool:
    params = getattr(type(v), "__dataclass_params__", None)
    return params is not None and params.frozen


class Snapshot:
    """The attributes of every mutable object reachable from a world (generators excluded)."""

    def __init__(self, w) -> None:
        self.saved: list = []
        seen: set[int] = set()
        self._visit(w, seen)
        self._visit(w.design, seen)

    def _visit(self, o, seen) -> None:
        if id(o) in seen:
            return
        seen.add(id(o))
        d = getattr(o, "__dict__", None)
        if d is not None:
            self.saved.append((o, None, {k: self._copy(v, seen) for k, v in d.items()}))
        else:
            slots = [s for c in type(o).__mro__ for s in getattr(c, "__slots__", ())]
            self.saved.append((o, slots, {s: self._copy(getattr(o, s), seen) for s in slots if hasattr(o, s)}))

    def _copy(self, v, seen):
        if isinstance(v, _KEEP) or _frozen(v):
            return v
        t = type(v)
        if t is np.ndarray:
            return v.copy()
        if t is list:
            return [self._copy(x, seen) for x in v]
        if t is tuple:
            return tuple(self._copy(x, seen) for x in v)
        if t is dict:
            return {k: self._copy(x, seen) for k, x in v.items()}
        if t is set:
            return set(v)
        if isinstance(v, np.generic):
            return v
        self._visit(v, seen)          # an object: restored in place, referred to as itself
        return v

    @staticmethod
    def _fresh(v):
        # a restored value must not share a mutable container with the snapshot (it is reused)
        t = type(v)
        if t is np.ndarray:
            return v.copy()
        if t is list:
            return [Snapshot._fresh(x) for x in v]
        if t is tuple:
            return tuple(Snapshot._fresh(x) for x in v)
        if t is dict:
            return {k: Snapshot._fresh(x) for k, x in v.items()}
        if t is set:
            return set(v)
        return v

    def restore(self) -> None:
        """Put every saved attribute back (attributes added since are removed)."""
        for o, slots, attrs in self.saved:
            if slots is None:
                d = o.__dict__
                d.clear()
                for k, v in attrs.items():
                    d[k] = self._fresh(v)
            else:
                for k, v in attrs.items():
                    setattr(o, k, self._fresh(v))


__all__ = ["Snapshot"]
