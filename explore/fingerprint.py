"""State fingerprints: a canonical encoding of everything in a world that decides its future.

The encoding walks the world's object graph from the :class:`World` itself: every layer (bitmaps
as their words), the truth (page versions), counters, locks, the design object's attributes, and
every thread with its suspended generator frames (code, ``f_lasti``, ``f_locals`` and the
``gi_yieldfrom`` chain). Objects that are reachable twice (a RAMBlock held by a frame's ``rb``
and by ``w.blocks``) are encoded once and then by their visit index, so identity is kept
without encoding memory addresses. The traversal order is deterministic (attribute insertion
order), so two worlds with equal encodings are equal object graphs.

Left out, because nothing reads them to decide a later step (see docs/explore.md):
the step counter, the events of the last step (reset by every step; the step invariants read
them right after the step, and the explorer checks every transition), the current-actor slot
(``None`` between steps), reporting totals, step labels, and the constant parts of a world
(config, geometry, memslots, the page-to-block map).
"""
from __future__ import annotations

import types

import numpy as np

from dirtyproof.impl.bitmap import Bitmap
from dirtyproof.impl.regions import Region, _inside

_INSIDE = _inside.__code__

# Attributes that never decide a later step (or never change), per class name.
IGNORED = {
    "World": frozenset({"steps", "events", "last_step", "current", "total_syncs", "total_sent", "config",
                        "geometry", "guest_pages", "page_block", "slots", "ram_pages", "design_spec"}),
    "KVM": frozenset({"slots", "mode", "slot_mask"}),
    "RAMBlock": frozenset({"spec", "idstr", "offset", "pages", "fast_path", "word_bits",
                           "clear_bmap_shift", "index"}),
    "Actor": frozenset({"label"}),
}
IGNORED["TrackedWorld"] = IGNORED["World"]      # the explorer's footprint-recording subclasses
IGNORED["TrackedKVM"] = IGNORED["KVM"]
_NONE = frozenset()
_ATOMS = frozenset({int, float, str, bool, bytes, type(None)})


class Encoder:
    """Encodes one world into a nested tuple; :meth:`encode` is the entry point."""

    def __init__(self) -> None:
        self.index: dict[int, int] = {}
        self.keep: list = []          # keep visited objects alive so ids are not reused mid-walk
        # the declared statistics met (module docstring), in visiting order: kept apart from the
        # encoding so that a state can be compared with another modulo them
        self.stats: list = []
        self.stat_objects: list = []

    # Each container below encodes its non-atomic members by calling the member type's encoder
    # from _DISPATCH directly (``disp[t](self, x)``) rather than through :meth:`encode`: the same
    # encoding with one Python call fewer per member, out of about 160 per state.
    def encode(self, v):
        """The canonical form of ``v`` (atoms as themselves, containers and objects recursively)."""
        t = type(v)
        if t in _ATOMS:
            return v
        return _DISPATCH[t](self, v)

    def _seq(self, v):
        disp = _DISPATCH
        return (type(v) is tuple, tuple([x if (t := type(x)) in _ATOMS else disp[t](self, x) for x in v]))

    def _dict(self, v):
        disp = _DISPATCH
        return ("d", tuple([(k if (tk := type(k)) in _ATOMS else disp[tk](self, k),
                             x if (t := type(x)) in _ATOMS else disp[t](self, x))
                            for k, x in v.items()]))

    def _set(self, v):
        if not v:
            return _EMPTY_SET
        disp = _DISPATCH
        return ("s", tuple(sorted([x if (t := type(x)) in _ATOMS else disp[t](self, x) for x in v], key=repr)))

    def _object(self, o):
        key = id(o)
        seen = self.index.get(key)
        if seen is not None:
            return ("@", seen)
        self.index[key] = len(self.index)
        self.keep.append(o)
        t = type(o)
        plan = _PLANS.get(t)
        if plan is None or plan[4] is not getattr(t, "STATISTICS", None) or plan[5] is not IGNORED.get(plan[0]):
            plan = _plan(t)
        name, skip, stats, slots = plan[:4]
        if stats:
            self.stats.append(tuple([getattr(o, f) for f in stats]))
            self.stat_objects.append(o)
        disp = _DISPATCH
        if slots is None:
            items = tuple([(k, x if (tx := type(x)) in _ATOMS else disp[tx](self, x))
                           for k, x in o.__dict__.items() if k not in skip])
        else:
            enc = self.encode
            items = tuple([(s, enc(getattr(o, s, None))) for s in slots])
        return (name, items)

    def _generator(self, g):
        key = id(g)
        seen = self.index.get(key)
        if seen is not None:
            return ("@", seen)
        self.index[key] = len(self.index)
        self.keep.append(g)
        fr = g.gi_frame
        if fr is None:
            return ("g", g.gi_code.co_qualname, "done")
        # f_lasti and the locals give the position; values on the frame's stack across a yield
        # are, in the model's code, copies of locals or loop iterators whose position the loop
        # variable gives (docs/explore.md; the soundness test checks it on sampled states)
        code = fr.f_code
        inner = g.gi_yieldfrom
        disp = _DISPATCH
        if code is _INSIDE and inner is not None:
            # a region wrapper (impl/regions.py) suspended in its ``yield from``: of its locals
            # the world is the world, and the actor and its region stack were fixed when it
            # started, by the thread whose chain it is in (encoded with that actor); what it does
            # next depends on its region and the generator it yields from. Encoding the stack
            # in every wrapper was a quarter of a fingerprint.
            loc = fr.f_locals
            region = loc["region"]
            return ("R", fr.f_lasti, disp[type(region)](self, region), loc["actor"] is None,
                    disp[type(inner)](self, inner))
        # sorted by name: a frame's locals dict keeps the order in which earlier looks at the
        # frame first saw each variable bound, so one state reached live and by a replay listed
        # them differently and was counted twice
        loc = tuple([(k, x if (t := type(x)) in _ATOMS else disp[t](self, x)) for k, x in sorted(fr.f_locals.items())])
        return ("g", code.co_qualname, code.co_firstlineno, fr.f_lasti, loc,
                None if inner is None else disp[type(inner)](self, inner))


_EMPTY_SET = ("s", ())

# Per class: how its instances are encoded (qualname, attributes left out, statistics, slots or
# None), worked out from IGNORED and the class's STATISTICS and __slots__; only the plan is
# cached, the values are read afresh on every walk. A plan is used only while the STATISTICS and
# IGNORED entry it was made from are still the very objects the class and IGNORED hold (a test
# declares no statistics by replacing them), so it cannot be stale. Working it out on every
# object (IGNORED by name, a set union for MigrationState and Ghost) was a tenth of a fingerprint.
_PLANS: dict[type, tuple] = {}


def _plan(t) -> tuple:
    name = t.__qualname__
    ignored = IGNORED.get(name, _NONE)
    # the fields the class declares as statistics (its STATISTICS: explicit data of the model,
    # impl/world.py's MigrationState and impl/ghost.py's Ghost)
    stats = frozenset(getattr(t, "STATISTICS", ()))
    skip = ignored | stats if stats else ignored
    slots = None
    if not t.__dictoffset__:          # instances without a __dict__: their slots, as before
        slots = tuple([s for c in t.__mro__ for s in getattr(c, "__slots__", ()) if s not in skip])
    plan = _PLANS[t] = (name, skip, tuple(stats), slots, getattr(t, "STATISTICS", None), IGNORED.get(name))
    return plan


def _callable(enc, v):
    """A function, class or module by its qualified name (a module by its repr)."""
    q = getattr(v, "__qualname__", _MISSING)    # not repr(v) as the default: it was made every time
    return ("f", q if q is not _MISSING else repr(v))


_MISSING = object()


def _array(enc, v):
    return ("a", v.dtype.str, v.shape, v.tobytes())


def _classify(t):
    """How values of type ``t`` are encoded (decided once per type)."""
    if issubclass(t, Bitmap):                     # the explorer's footprint-recording bitmaps
        return _DISPATCH[Bitmap]
    if issubclass(t, np.generic):
        return lambda enc, v: v.item()
    if issubclass(t, (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType)):
        return _callable
    if issubclass(t, types.MethodType):
        return lambda enc, v: ("m", v.__func__.__qualname__, enc.encode(v.__self__))
    if t is Region:
        return _region
    params = getattr(t, "__dataclass_params__", None)
    if params is not None and params.frozen:      # Config, Geometry, SlotSpec...: immutable values
        return _frozen_value
    return Encoder._object


# The encoding of immutable values by identity: their repr (a Config's runs through every block
# spec) was a third of a fingerprint's time, and the same few objects are met in every state. The
# object is kept with its encoding, so its id cannot be reused while cached; bounded, as steps
# make new records.
_FROZEN: dict[int, tuple] = {}
_FROZEN_MAX = 50_000


def _frozen_value(enc, v):
    hit = _FROZEN.get(id(v))
    if hit is not None and hit[0] is v:
        return hit[1]
    out = ("v", type(v).__qualname__, repr(v))
    if len(_FROZEN) >= _FROZEN_MAX:
        _FROZEN.clear()
    _FROZEN[id(v)] = (v, out)
    return out


def _region(enc, v):
    """A region by its fields, its arguments encoded as any value (a RAMBlock by identity): every
    interface call makes a new Region, so the identity cache of :func:`_frozen_value` missed and
    their ``repr`` was a quarter of a fingerprint."""
    a, k = v.args, v.kwargs
    # most regions have no arguments: their (empty) tuples' encoding is a constant
    return ("v", "Region", v.name, _EMPTY_TUPLE if a == () and type(a) is tuple else enc.encode(a),
            _EMPTY_TUPLE if k == () and type(k) is tuple else enc.encode(k))


_EMPTY_TUPLE = (True, ())


class _Dispatch(dict):
    """Type -> encoder; a type met for the first time is classified (:func:`_classify`) once."""

    def __missing__(self, t):
        f = self[t] = _classify(t)
        return f


_DISPATCH = _Dispatch({
    tuple: Encoder._seq, list: Encoder._seq, dict: Encoder._dict, set: Encoder._set, frozenset: Encoder._set,
    np.ndarray: _array, Bitmap: lambda enc, v: ("B", v.nbits, v.words.tobytes()),
    types.GeneratorType: Encoder._generator, range: lambda enc, v: ("r", v.start, v.stop, v.step),
})


def canonical(w, extra=()) -> tuple:
    """The canonical form of world ``w`` (with ``extra``: the explorer's remaining budgets): the
    form modulo statistics (:func:`abstract`) and the statistics' values in visiting order."""
    enc = Encoder()
    form = (enc.encode(w), extra)
    return (form, tuple(enc.stats))


def abstract(w, extra=()) -> tuple:
    """The canonical form of ``w`` with every declared statistic left out (the ``STATISTICS`` of
    the model's classes): equal for two states that differ only in their counts."""
    return canonical(w, extra)[0]


def fingerprints(w, extra=()) -> tuple[int, int, int]:
    """``(fingerprint, fingerprint modulo statistics, world fingerprint)`` of ``w`` from one walk of
    its graph: the first is :func:`fingerprint`, the second a hash of :func:`abstract`, the third
    a hash of the world's form and statistics without ``extra`` (the explorer's budgets: two nodes
    with one world fingerprint differ in their budgets only, which budget subsumption compares).
    The world's form is hashed once (a tuple does not keep its hash) and each hash is built on it."""
    enc = Encoder()
    hw = hash(enc.encode(w))
    stats = tuple(enc.stats)
    afp = hash((hw, extra))
    return hash((afp, stats)), afp, hash((hw, stats))


def fingerprint(w, extra=()) -> int:
    """A 64-bit hash of :func:`canonical`, as TLC's fingerprints: two distinct states collide with
    probability about n^2 / 2^65 for n states (under 3e-8 for a million). Only equality of
    fingerprints is used, never their order, so the search order does not depend on hash seeds.
    It is computed as a hash of the hash modulo statistics and the statistics' values, so the
    explorer gets both from one walk (:func:`fingerprints`)."""
    return fingerprints(w, extra)[0]


def statistics_of(w) -> list:
    """``[(object, field names)]``: every object of ``w`` with declared statistics, in visiting
    order (for the non-convergence check's counts and its shift test)."""
    enc = Encoder()
    enc.encode(w)
    return [(o, tuple(getattr(type(o), "STATISTICS"))) for o in enc.stat_objects]


__all__ = ["abstract", "canonical", "fingerprint", "fingerprints", "statistics_of", "Encoder", "IGNORED"]
