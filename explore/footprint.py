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

from dirtyproof.impl.bitmap import Bitmap
from dirtyproof.impl.kvm import KVM
from dirtyproof.impl.world import MigrationState, World

_ON = [False]
_TAGS: set = set()

# World attributes written by environment moves, and the tag an access records. The bitmaps the
# environment writes (L1, write protection, L2) record their accesses page by page themselves.
WORLD_TRACKED = {"src_version": "src", "clock_ms": "clock", "vm_running": "vm"}
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


@contextmanager
def _quiet():
    """Suspend recording (inside an operation that has recorded its own, narrower, footprint)."""
    was = _ON[0]
    _ON[0] = False
    try:
        yield
    finally:
        _ON[0] = was


def _pages(tag: str, start: int, end: int) -> None:
    if _ON[0]:
        _TAGS.update((tag, p) for p in range(start, end))


class _TrackedBitmap(Bitmap):
    """A bitmap recording which pages a tracked step touches: single-bit and word operations
    record their pages; any other use of the words records the whole bitmap (``TAG``)."""

    __slots__ = ()
    TAG = ""

    @property
    def words(self):
        if _ON[0]:
            _TAGS.add(self.TAG)
        return Bitmap.words.__get__(self)

    @words.setter
    def words(self, value):
        if _ON[0]:
            _TAGS.add(self.TAG)
        Bitmap.words.__set__(self, value)

    def _bit(name):
        base = getattr(Bitmap, name)

        def op(self, i, *a):
            if not _ON[0]:
                return base(self, i, *a)
            _TAGS.add((self.TAG, i))
            with _quiet():
                return base(self, i, *a)
        op.__name__, op.__doc__ = name, base.__doc__
        return op

    def _range(name):
        base = getattr(Bitmap, name)

        def op(self, start, end):
            if not _ON[0]:
                return base(self, start, end)
            _pages(self.TAG, start, end)
            with _quiet():
                return base(self, start, end)
        op.__name__, op.__doc__ = name, base.__doc__
        return op

    test, set, clear, test_and_clear, test_and_set = map(_bit, ("test", "set", "clear", "test_and_clear", "test_and_set"))

    def _word_pages(self, w, bits) -> None:
        b = bits or self.word_bits
        _pages(self.TAG, w * b, (w + 1) * b)

    def word(self, w: int, bits: int | None = None) -> int:
        """As the base; records the word's pages."""
        if not _ON[0]:
            return Bitmap.word(self, w, bits)
        self._word_pages(w, bits)
        with _quiet():
            return Bitmap.word(self, w, bits)

    def xchg_word(self, w: int, value: int, bits: int | None = None) -> int:
        """As the base; records the word's pages."""
        if not _ON[0]:
            return Bitmap.xchg_word(self, w, value, bits)
        self._word_pages(w, bits)
        with _quiet():
            return Bitmap.xchg_word(self, w, value, bits)

    def set_word(self, w: int, value: int, bits: int | None = None) -> None:
        """As the base; records the word's pages."""
        if not _ON[0]:
            return Bitmap.set_word(self, w, value, bits)
        self._word_pages(w, bits)
        with _quiet():
            return Bitmap.set_word(self, w, value, bits)
    find_next, range_bits, set_range, clear_range = map(_range, ("find_next", "range_bits", "set_range", "clear_range"))

    def _range_mask_words(self, start: int, end: int):
        """As the base: reads only the bitmap's size, no content."""
        with _quiet():
            return Bitmap._range_mask_words(self, start, end)

    del _bit, _range


class TrackedL1(_TrackedBitmap):
    """KVM's dirty log, footprint-recording."""
    __slots__ = ()
    TAG = "L1"


class TrackedWP(_TrackedBitmap):
    """KVM's write protection, footprint-recording."""
    __slots__ = ()
    TAG = "WP"


class TrackedL2(_TrackedBitmap):
    """L2, footprint-recording."""
    __slots__ = ()
    TAG = "L2"


class TrackedWorld(World):
    """A world whose environment-written attributes record their accesses during a tracked step."""

    locals().update({n: _prop(n, t) for n, t in WORLD_TRACKED.items()})

    def read_page(self, page: int, queued: bool = False) -> int:
        """As :meth:`World.read_page`; the read is recorded for ``page`` alone, not for every version."""
        if not _ON[0]:
            return World.read_page(self, page, queued)
        _TAGS.add(("src", page))
        _ON[0] = False
        try:
            return World.read_page(self, page, queued)
        finally:
            _ON[0] = True


    def kvm_slot_sync_dirty_pages(self, slot) -> None:
        """As the base; touches L2 over the slot only."""
        if not _ON[0]:
            return World.kvm_slot_sync_dirty_pages(self, slot)
        _pages("L2", slot.start, slot.end)
        with _quiet():
            return World.kvm_slot_sync_dirty_pages(self, slot)

    def _mark_layers(self) -> list:
        """As the base, not recorded: the checker's bookkeeping reads L2 and ``bmap`` whole
        around every step, but what it records (the marks a step clears) depends only on the
        pages the step itself touches, which the step's own operations record; recording the
        whole of L2 here made every device write conflict with every thread step."""
        if not _ON[0]:
            return World._mark_layers(self)
        with _quiet():
            return World._mark_layers(self)

    def _track_hands(self, actor, held_before: bool, marks: list) -> None:
        """As the base, not recorded (see :meth:`_mark_layers`)."""
        if not _ON[0]:
            return World._track_hands(self, actor, held_before, marks)
        with _quiet():
            return World._track_hands(self, actor, held_before, marks)

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
    """KVM whose ioctls record the pages of L1 and write protection they touch."""

    def get_dirty_log(self, slot) -> None:
        """As the base: reads (legacy mode: also clears and protects) the slot's pages."""
        if not _ON[0]:
            return KVM.get_dirty_log(self, slot)
        _pages("L1", slot.start, slot.end)
        _pages("WP", slot.start, slot.end)
        with _quiet():
            return KVM.get_dirty_log(self, slot)

    def clear_dirty_log(self, slot, start: int, end: int, mask=None):
        """As the base: clears and protects pages of [start, end) within the slot."""
        if not _ON[0]:
            return KVM.clear_dirty_log(self, slot, start, end, mask)
        lo, hi = max(start, slot.start), min(end, slot.end)
        _pages("L1", lo, hi)
        _pages("WP", lo, hi)
        with _quiet():
            return KVM.clear_dirty_log(self, slot, start, end, mask)


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
    w.kvm.__class__ = TrackedKVM
    w.kvm.L1.__class__ = TrackedL1
    w.kvm.protected.__class__ = TrackedWP
    w.L2.__class__ = TrackedL2
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
        return frozenset({"src", ("src", arg), "L1", ("L1", arg), "WP", ("WP", arg), "vm"})
    if who == "device":
        return frozenset({"src", ("src", arg), "L2", ("L2", arg), "vm"})
    if who == "clock":
        return frozenset({"clock"})
    if arg == "switchover":
        return frozenset({"downtime", "phase"})
    if arg == "cancel":
        return frozenset({"cancel", "phase"})
    return None


__all__ = ["TrackedWorld", "TrackedKVM", "TrackedMig", "TrackedL1", "TrackedWP", "TrackedL2", "track", "track_mig", "recording", "writes_of"]
