"""The checker's bookkeeping ("ghost state"): what the properties read besides QEMU's own state.

Design code never writes any of it. The world keeps it from what the design's steps do to QEMU's
state, observed around every step (:meth:`dirtyproof.impl.world.World.step_thread`) and inside
its own operations (``read_page``, ``deliver``, ``kvm.log_start``):

- **hands**: a dirty mark an actor took out of L2 (a sync's fetch) or out of ``bmap`` (a send's
  take) while it holds ``bitmap_mutex`` or is inside a sync (``migration_bitmap_sync``) or one
  page's send (``ram_find_and_save_block``) is in that actor's hands until it leaves both or reads the page. QEMU keeps such marks only in
  a function's local variables, and every one of those lives inside one ``bitmap_mutex`` section
  or one page's send (the slow path's ``test_and_clear`` result before its ``test_and_set``, a
  fetched word before it is OR-ed into ``bmap``, the page a send has taken and not yet read). A
  design that stores a bit later in the same section is not blamed for the steps in between;
  one that drops it is caught at the latest when it leaves, because hands are emptied then. A bit cleared from a design bitmap (``iter_bmap``) is
  not in anybody's hands: such bitmaps are moved into ``bmap`` within one step, and a bit
  cleared there without being in another marked layer is dropped at once.
- **in flight**: a page's content read by a send and not yet delivered, with the version read;
  ``deliver`` (by any thread: multifd channels deliver what the migration thread read) accepts
  only such a read, so a design cannot deliver a version nobody read.
- **queued** (multifd, ``impl/multifd.py``): a page the migration thread took and queued for a
  channel without reading it. It is in flight from the take: counted as marked (held) until a
  channel reads it; the read then makes it an ordinary read in flight, which ``deliver`` checks.
- **landed**: per page, the newest version the destination received in this attempt (for the
  property that no older copy lands after a newer one).
- **coverage owed**: from the step that starts dirty logging for the current attempt; over once
  logging stops, unless the attempt completed (then the destination holds the guest), and over
  as soon as a cancel is requested (that attempt's destination is thrown away).
- **declared free**: with free-page hinting (``impl/balloon.py``), a page the guest reported
  free, with its version then. Such a page, not written since (same version now), holds nothing
  the guest will read: it need not reach the destination, so coverage and no-loss pass it over.
  Any later write (a reuse) makes it owed again. Kept across attempts: it is a fact of the guest.
- **period truth**: ``bmap`` bits newly set while ``bitmap_mutex`` was held, since QEMU's rate
  period last started (``time_last_bitmap_sync`` moved).
- **the last kick** (dirty ring): the ``kvm_log_sync_global`` call (its region object) inside
  which the vCPUs were last kicked, so that a reap can tell whether its own log sync kicked first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class Hands:
    """Marks one actor took out of shared layers inside its current ``bitmap_mutex`` section."""

    fetched: set = field(default_factory=set)   # ram_addr pages whose L2 bit it cleared
    taken: set = field(default_factory=set)     # pages whose bmap bit it cleared (a send's take)

    def all(self) -> set:
        """Every page in these hands."""
        return self.fetched | self.taken

    def discard(self, page: int) -> None:
        """``page`` was read: whatever its marks meant is consumed."""
        self.fetched.discard(page)
        self.taken.discard(page)

    def __bool__(self) -> bool:
        return bool(self.fetched or self.taken)


@dataclass
class Ghost:
    """The checker's state of one world; see the module docstring."""

    hands: dict = field(default_factory=dict)        # actor name -> Hands
    in_flight: dict = field(default_factory=dict)    # page -> versions read, not yet delivered
    armed_attempt: int = 0         # attempt whose dirty-log start made coverage owed
    period_new_bits: int = 0
    period_start_ms: int | None = None   # QEMU's time_last_bitmap_sync when the period began
    bmap_pop_at_lock: int = 0
    declared_free: dict = field(default_factory=dict)   # page -> version when the guest reported it free
    queued: dict = field(default_factory=dict)   # page -> multifd queueings not yet read by a channel
    landed: dict = field(default_factory=dict)   # page -> newest version delivered this attempt
    ring_kick_region: object = None    # the kvm_log_sync_global region of the last kick (dirty ring)

    # the checker's mirror of MigrationState.num_dirty_pages_period (a statistic there): it grows
    # with it, so the explorer's comparison modulo statistics leaves both out
    STATISTICS: ClassVar[tuple[str, ...]] = ("period_new_bits",)

    def hands_of(self, actor: str) -> Hands:
        """The (possibly empty) hands of ``actor``."""
        h = self.hands.get(actor)
        if h is None:
            h = self.hands[actor] = Hands()
        return h

    def held_pages(self) -> set:
        """Every page in any actor's hands."""
        out: set = set()
        for h in self.hands.values():
            out |= h.all()
        out |= self.queued.keys()
        return out

    def reading(self, page: int, version: int, queued: bool = False) -> None:
        """A send read ``page`` at ``version``. ``queued`` (a multifd channel's read): it consumes
        one queueing of the page and leaves every hand alone: a sync running beside the channel
        may hold a mark of the page fetched after the page was queued."""
        self.in_flight.setdefault(page, []).append(version)
        if queued:
            n = self.queued.get(page, 0)
            if n > 1:
                self.queued[page] = n - 1
            elif n:
                del self.queued[page]
            return
        for h in self.hands.values():
            h.discard(page)

    def delivering(self, page: int, version: int) -> bool:
        """A send delivers ``page`` at ``version``: False unless some send read exactly that."""
        read = self.in_flight.get(page)
        if not read or version not in read:
            return False
        read.remove(version)
        if not read:
            del self.in_flight[page]
        return True

    def queueing(self, page: int) -> None:
        """The migration thread queued ``page`` for a multifd channel (read later)."""
        self.queued[page] = self.queued.get(page, 0) + 1

    def landing(self, page: int, version: int) -> int | None:
        """The destination receives ``page`` at ``version``: returns the newest version that had
        landed before (``None``: none this attempt) and remembers the newer of the two."""
        prev = self.landed.get(page)
        if prev is None or version > prev:
            self.landed[page] = version
        return prev

    def declare_free(self, page: int, version: int) -> None:
        """The guest reported ``page`` free while it held ``version``."""
        self.declared_free[page] = version

    def free_and_unwritten(self, src) -> list[int]:
        """Pages declared free and not written since (their version in ``src`` unchanged)."""
        return [p for p, v in self.declared_free.items() if int(src[p]) == v]

    def new_attempt(self) -> None:
        """A new migration: nothing in anybody's hands or in flight, a fresh rate period."""
        self.hands.clear()
        self.in_flight.clear()
        self.queued.clear()
        self.landed.clear()
        self.period_new_bits = 0
        self.period_start_ms = None
