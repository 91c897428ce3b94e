"""What a thread step touches of the data the environment writes: the footprint behind the
explorer's partial-order reduction.

The environment writes little: a vCPU write changes the page's version, its L1 bit and its write
protection; a device write the version and L2; a clock move the clock; every write needs the VM
running. A world explored with reductions on is switched to subclasses of ``World`` and ``KVM``
whose attributes holding that data are properties: while a thread step runs, each access (read
or write) is recorded as a tag. A thread step whose footprint holds none of the tags an
environment move writes commutes with it (same state in both orders, neither disables the
other): see docs/explore.md.
"""
from __future__ import annotations

from contextlib import contextmanager

from dirtyproof.impl.kvm import KVM
from dirtyproof.impl.world import MigrationState, World

_ON = [False]
_TAGS: set = set()

# World and KVM attributes written by environment moves, and the tag an access records.
WORLD_TRACKED = {"src_version": "src", "L2": "L2", "clock_ms": "clock", "vm_running": "vm"}
KVM_TRACKED = {"L1": "L1", "protected": "WP"}
# MigrationState fields management commands write or are enabled by.
MIG_TRACKED = {"downtime_raised": "downtime", "cancel_requested": "cancel", "phase": "phase"}


def _prop(name: str, tag: str) -> property:
    key = "_" + name

    def get(self):
        if _ON[0]:
            _TAGS.add(tag)
        return self.__dict__[key]

    def put(self, value):
        if _ON[0]:
            _TAGS.add(tag)
        self.__dict__[key] = value

    return property(get, put, doc=f"``{name}``, with accesses during a tracked step recorded as {tag!r}")


class TrackedWorld(World):
    """A world whose environment-written attributes record their accesses during a tracked step."""

    locals().update({n: _prop(n, t) for n, t in WORLD_TRACKED.items()})

    def read_page(self, page: int) -> int:
        """As :meth:`World.read_page`; the read is recorded for ``page`` alone, not for every version."""
        if not _ON[0]:
            return World.read_page(self, page)
        _TAGS.add(("src", page))
        _ON[0] = False
        try:
            return World.read_page(self, page)
        finally:
            _ON[0] = True


    def runnable(self, actor) -> bool:
        """As :meth:`World.runnable`, not recorded: whether a thread may step is its enabledness,
        which the explorer accounts for separately (a clock move that wakes a thread is always taken)."""
        if not _ON[0]:
            return World.runnable(self, actor)
        _ON[0] = False
        try:
            return World.runnable(self, actor)
        finally:
            _ON[0] = True


class TrackedKVM(KVM):
    """KVM whose L1 and write-protection maps record their accesses during a tracked step."""

    locals().update({n: _prop(n, t) for n, t in KVM_TRACKED.items()})


class TrackedMig(MigrationState):
    """A migration attempt whose management-written fields record their accesses."""

    locals().update({n: _prop(n, t) for n, t in MIG_TRACKED.items()})


def track_mig(w: World) -> None:
    """Switch a new attempt's ``MigrationState`` (made by ``mgmt start``) to :class:`TrackedMig`."""
    mig = w.mig
    if mig is not None and type(mig) is MigrationState:
        d = mig.__dict__
        for name in MIG_TRACKED:
            d["_" + name] = d.pop(name)
        mig.__class__ = TrackedMig


def track(w: World) -> World:
    """Switch ``w`` (a fresh ``World``) to the tracked classes, in place; returns it."""
    d = w.__dict__
    for name in WORLD_TRACKED:
        d["_" + name] = d.pop(name)
    w.__class__ = TrackedWorld
    kd = w.kvm.__dict__
    for name in KVM_TRACKED:
        kd["_" + name] = kd.pop(name)
    w.kvm.__class__ = TrackedKVM
    return w


@contextmanager
def recording():
    """Record the footprint of the code run inside; yields the set of tags it fills."""
    _TAGS.clear()
    _ON[0] = True
    tags: set = set()
    try:
        yield tags
    finally:
        _ON[0] = False
        tags |= _TAGS
        _TAGS.clear()


def writes_of(choice) -> frozenset | None:
    """The tags an environment move conflicts with (``None``: always explored, as management
    commands other than switchover and cancel are)."""
    who, arg = choice
    if who.startswith("vcpu"):
        return frozenset({"src", ("src", arg), "L1", "WP", "vm"})
    if who == "device":
        return frozenset({"src", ("src", arg), "L2", "vm"})
    if who == "clock":
        return frozenset({"clock"})
    if arg == "switchover":
        return frozenset({"downtime", "phase"})
    if arg == "cancel":
        return frozenset({"cancel", "phase"})
    return None


__all__ = ["TrackedWorld", "TrackedKVM", "TrackedMig", "track", "track_mig", "recording", "writes_of"]
