"""Snapshot and restore of a world's data in place, for steps that move no generator.

A generator cannot be copied, but an environment step (a write, a clock move, a management
command other than ``start``) runs no thread: it only changes data. The explorer therefore
applies such a step to the live world, looks at the result, and puts the data back in place, so
that every suspended frame still refers to the same (restored) objects.

Restoring is in place at every level: an object's attributes are rebound to the very values
they had, and every mutable container and array reachable from them gets its saved contents
back. So two objects sharing one array or one list (the world's bookkeeping may alias the
world's arrays) still share it after a restore.
"""
from __future__ import annotations

import types

import numpy as np

_KEEP = (int, float, str, bool, bytes, type(None), types.GeneratorType, types.FunctionType,
         types.MethodType, type, types.ModuleType, range, np.generic)


def _frozen(v) -> bool:
    params = getattr(type(v), "__dataclass_params__", None)
    return params is not None and params.frozen


class Snapshot:
    """The attributes of every mutable object reachable from a world (generators excluded), and
    the contents of every container and array they hold."""

    def __init__(self, w) -> None:
        self.objects: list = []        # (object, slot names or None, {attribute: value})
        self.contents: list = []       # (container or array, saved contents)
        self._seen: set[int] = set()
        self._visit(w)
        self._visit(w.design)
        del self._seen

    def _visit(self, o) -> None:
        if id(o) in self._seen:
            return
        self._seen.add(id(o))
        d = getattr(o, "__dict__", None)
        if d is not None:
            attrs = dict(d)
            self.objects.append((o, None, attrs))
        else:
            slots = [s for c in type(o).__mro__ for s in getattr(c, "__slots__", ())]
            attrs = {s: getattr(o, s) for s in slots if hasattr(o, s)}
            self.objects.append((o, slots, attrs))
        for v in attrs.values():
            self._value(v)

    def _value(self, v) -> None:
        if isinstance(v, _KEEP) or _frozen(v):
            return
        t = type(v)
        if t is tuple:
            for x in v:
                self._value(x)
            return
        if id(v) in self._seen:
            return
        if t is np.ndarray:
            self._seen.add(id(v))
            if v.flags.writeable:          # a read-only array cannot have changed
                self.contents.append((v, v.copy()))
        elif t is list:
            self._seen.add(id(v))
            self.contents.append((v, list(v)))
            for x in v:
                self._value(x)
        elif t is dict:
            self._seen.add(id(v))
            self.contents.append((v, dict(v)))
            for x in v.values():
                self._value(x)
        elif t is set:
            self._seen.add(id(v))
            self.contents.append((v, set(v)))
        else:
            self._visit(v)             # an object: restored in place, referred to as itself

    def restore(self) -> None:
        """Put every saved attribute and content back (attributes added since are removed)."""
        for o, slots, attrs in self.objects:
            if slots is None:
                d = o.__dict__
                d.clear()
                d.update(attrs)
            else:
                for k, v in attrs.items():
                    setattr(o, k, v)
        for c, saved in self.contents:
            t = type(c)
            if t is np.ndarray:
                c[...] = saved
            elif t is list:
                c[:] = saved
            else:                      # dict or set
                c.clear()
                c.update(saved)


__all__ = ["Snapshot"]
