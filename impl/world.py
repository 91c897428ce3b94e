"""The world: every layer, the truth (page versions), locks, actors and the atomic steps between them.

A world is driven one atomic step at a time by :meth:`World.step` with a *choice*
``[actor, arg]``; a schedule is a list of choices, so any run replays exactly from its choices.
Actors that are threads (the migration thread, the periodic timer, the watcher) are Python
generators supplied by the design: each ``yield`` ends one atomic step. Environment actors (vCPU
writes, device writes, the clock, the management interface) are single-step actions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Generator, Iterator

import numpy as np

from . import regions
from .bitmap import Bitmap
from .clocks import QEMU_CLOCK_REALTIME, VMClock
from .freed import free_bitmap, free_ram_state, is_freed
from .config import TARGET_PAGE_SIZE, Config
from .ghost import Ghost
from .kvm import KVM, ClearEvent
from .ramblock import RAMBlock
from .steps import EXIT, JOIN, MULTIFD_WAIT, SLEEP, WAIT
from .steps import Step as StepRecord
from .steps import as_step
from .watchdog import next_step

# free_page_lock (virtio-balloon's, taken under the BQL by the precopy notifier and before
# bitmap_mutex by the iothread's hint) exists only in worlds with free-page hinting.
LOCK_ORDER = {"BQL": 0, "bitmap_mutex": 1, "slots_lock": 2, "free_page_lock": 0.5}

Step = Generator[StepRecord, None, None]

# QEMU's dirty ring reaper thread (accel/kvm/kvm-all.c kvm_dirty_ring_reaper_thread): dirty ring mode only
REAPER = "kvm-reaper"
# the environment actor for writes KVM makes without a running vCPU (dirty ring with the backup bitmap)
NOVCPU = "kvm-novcpu"


class ModelError(Exception):
    """A step did something the concurrency rules forbid (lock order, self-deadlock, bad choice)."""

    def __init__(self, invariant: str, message: str):
        super().__init__(message)
        self.invariant = invariant


class BadChoice(ValueError):
    """A schedule asked for a step that is not enabled or not well-formed."""


class ModelStateWrite(AttributeError):
    """Design code assigned a field of a model object only the world writes (an :class:`Actor`'s
    scheduling state): a bug in the design, reported as its crash, never as a verdict."""


@dataclass
class Actor:
    """A thread of the model: a generator plus what it waits for (a lock or a time).

    Only the world writes its fields (:func:`_put`): a design that assigned ``blocked_on``,
    ``wake_at_ms`` or ``released`` could unblock a thread, wake it or fold two atomic steps into
    one, and so hide an interleaving the checks would see. An assignment to a field once it is
    set raises :class:`ModelStateWrite` (design code asks the model instead: ``w.wake``,
    ``w.sleep_until``, ``w.acquire``, ``w.release``, ``w.join``); ``held`` is a tuple, so it
    cannot be changed in place either. (``regions``, the stack of design methods the thread is
    in, is a list the region wrappers push and pop: impl/regions.py.)"""

    name: str
    gen: Iterator[StepRecord]
    blocked_on: str | None = None
    joining: str | None = None
    wake_at_ms: int = 0                   # a deadline on ``wake_clock`` (impl/clocks.py)
    wake_clock: str = QEMU_CLOCK_REALTIME
    attempt: int = 0                      # the migration attempt that spawned it (0: none)
    locked: bool = False                  # whether it ever took a lock (did any work)
    until: object = None                  # a condition it waits for (multifd's channel waits)
    held: tuple[str, ...] = ()
    released: bool = False                # whether it released a lock in the step it is taking
    done: bool = False
    label: str = ""                       # the last step's label, rendered from ``step``
    step: StepRecord | None = None        # the last step's record
    regions: list = field(default_factory=list)   # design methods it is inside (impl/regions.py)

    def __setattr__(self, name, value):
        if name in self.__dict__:
            raise ModelStateWrite(
                f"design code assigned Actor.{name} of thread {self.name!r}: a thread's state is the "
                f"model's; use the model's operations (w.wake, w.sleep_until, w.acquire, w.release, w.join)")
        object.__setattr__(self, name, value)


def _put(actor: Actor, **fields) -> None:
    """The world's own writes of ``actor``'s fields (past :meth:`Actor.__setattr__`'s guard)."""
    actor.__dict__.update(fields)


@dataclass
class MigrationState:
    """One migration attempt: QEMU's RAMState plus the mig_stats counters it uses.

    Every field is QEMU's state: a design may change it. The checker's bookkeeping lives in
    :class:`~dirtyproof.impl.ghost.Ghost` (``World.ghost``), which only the world writes."""

    attempt: int
    phase: str = "setup"                 # setup, wait_unplug, active, completing, completed, cancelled
    migration_dirty_pages: int = 0
    dirty_sync_count: int = 0
    num_dirty_pages_period: int = 0
    time_last_bitmap_sync: int = 0
    bytes_transferred: int = 0
    bytes_xfer_prev: int = 0
    dirty_rate_high_cnt: int = 0
    pages_sent: int = 0
    syncs: int = 0
    last_sync_end_ms: int = 0
    iteration_count: int = 0             # the seed series' RAMState.iteration_count (ordinary syncs)
    # sender position (PageSearchStatus): block index and block-relative page
    pss_block: int = 0
    pss_page: int = 0
    cancel_requested: bool = False
    downtime_raised: bool = False

    # QEMU's accounting counters (mig_stats, RAMState's sync and iteration counts): they only grow
    # within an attempt, and a thread reads them only to count, to report, or in comparisons
    # that docs/explore.md ("Non-convergence") goes through. The explorer's non-convergence check
    # compares states modulo these and pumps the loop to show the counts decide nothing there.
    STATISTICS: ClassVar[tuple[str, ...]] = ("dirty_sync_count", "syncs", "iteration_count", "pages_sent",
                                             "bytes_transferred", "num_dirty_pages_period")


class World:
    """A source VM, a destination, and the migration between them under one design."""

    def __init__(self, config: Config, design) -> None:
        from .designs.base import Design  # late: designs import the world's types
        if isinstance(design, type):
            design = design()
        if not isinstance(design, Design):
            raise TypeError(f"design must be a Design instance or subclass, not {design!r}")
        self.config = config
        self.design = design
        geo = config.geometry
        self.geometry = geo
        self.ram_pages = geo.ram_pages
        self.blocks = [RAMBlock(i, b, geo.clear_bmap_shift) for i, b in enumerate(geo.blocks)]
        self.slots = geo.slots()
        self.kvm = KVM(self.slots, self.ram_pages, config.kvm_mode, config.vcpus, config.dirty_ring_size,
                       config.dirty_ring_buffer, config.dirty_ring_with_bitmap)
        self.L2 = Bitmap(self.ram_pages, word_bits=geo.word_bits)   # the host's unsigned long, as the blocks'
        # page -> block index, for the pages of blocks (-1 in gaps)
        self.page_block = np.full(self.ram_pages, -1, dtype=np.int32)
        for rb in self.blocks:
            self.page_block[rb.offset:rb.offset + rb.pages] = rb.index
        self.guest_pages = [p for rb in self.blocks for p in range(rb.offset, rb.offset + rb.pages)] \
            if self.ram_pages <= 1 << 16 else None
        # RAMBlock creation marks every page dirty in L2 for every client, long before migration
        for rb in self.blocks:
            self.L2.set_range(rb.offset, rb.offset + rb.pages)
        # the truth: a version per page, bumped by every write, recorded by every read, held by
        # the destination. Only the world writes it; designs and checks get read-only views.
        # int32: 2^31 writes to one page is far beyond any run, and a 2^28-page world then
        # needs 3 GiB for the truth instead of 6
        self._src = np.zeros(self.ram_pages, dtype=np.int32)
        self._read = np.full(self.ram_pages, -1, dtype=np.int32)
        self._dest = np.full(self.ram_pages, -1, dtype=np.int32)
        self.src_version, self.last_read, self.dest_version = (_read_only(a) for a in
                                                               (self._src, self._read, self._dest))
        self.ghost = Ghost()
        self._log_starts_at_attempt = 0
        self.clock_ms = 0
        self.vm_running = True
        self.vm_clock = VMClock()            # the virtual clocks stand still while the VM is stopped
        self.dirty_log_stop_postponed = False   # memory_global_dirty_log_stop while stopped
        self._in_design = False              # design code is running a thread step (impl/freed.py)
        self.throttle_pct = 0
        self.lock_owner: dict[str, str | None] = {k: None for k in LOCK_ORDER
                                                  if k != "free_page_lock" or config.free_page_hinting}
        self.actors: dict[str, Actor] = {}
        self.current: Actor | None = None
        self.mig: MigrationState | None = None
        self.attempts = 0
        self.steps = 0
        self.events: list = []          # what the current step did that invariants look at
        self.total_syncs = 0
        self.total_sent = 0
        self.sync_begin = None
        self.last_step: StepRecord | None = None   # the record of the last thread step
        # precopy notifiers (migration/migration.c precopy_notify): callables (world, reason)
        # returning steps; the balloon registers one when the guest hints free pages
        self.precopy_notifiers: list = []
        self.balloon = None
        # multifd's send state of the current attempt (impl/multifd.py), made at each start
        self.multifd = None
        if config.free_page_hinting:
            from .balloon import VirtIOBalloon
            self.balloon = VirtIOBalloon()
            self.balloon.realize(self)
        design.attach(self)
        regions.install(self, design)
        if self.kvm.ring_mode:
            # kvm_init starts the reaper with the ring (kvm_dirty_ring_reaper_init): a thread of
            # the VM, not of a migration attempt (attempt 0)
            self.spawn(REAPER, design.kvm_dirty_ring_reaper_thread(self))
        self._observe_returns(design, ("ram_list_init_bitmaps",))
        self._allocate_on_entry(design, "ram_list_init_bitmaps")

    def _allocate_on_entry(self, design, name) -> None:
        """Before the design's ``name`` runs, the world allocates the bitmaps a cleanup freed."""
        method = getattr(design, name)

        def allocating(*args, _method=method, **kw):
            self._allocate_bitmaps()
            return _method(*args, **kw)
        allocating.__doc__ = method.__doc__
        setattr(design, name, allocating)

    def _observe_returns(self, design, names) -> None:
        """Record a ``("returned", name)`` event whenever the design's method ``name`` returns
        (rules that state a QEMU function's postcondition are evaluated at that step)."""
        for name in names:
            method = getattr(design, name)

            def observed(*args, _method=method, _name=name, **kw):
                out = _method(*args, **kw)
                self.events.append(("returned", _name))
                return out
            observed.__doc__ = method.__doc__
            setattr(design, name, observed)

    # ------------------------------------------------------------------------------------------
    # locks and waiting (used from inside actor generators)
    def acquire(self, lock: str) -> Step:
        """Take ``lock`` for the current actor; if another actor holds it, end the step and wait."""
        actor = self.current
        for held in actor.held:
            if LOCK_ORDER[held] > LOCK_ORDER[lock]:
                order = " -> ".join(sorted(self.lock_owner, key=LOCK_ORDER.get))
                raise ModelError("lock-order", f"{actor.name} takes {lock} while holding {held} "
                                 f"(order is {order})")
        if self.lock_owner[lock] == actor.name:
            raise ModelError("lock-order", f"{actor.name} takes {lock} twice (self-deadlock)")
        if actor.released:
            # a release then an acquire are never one atomic step: between them another thread
            # may take both locks (a release moves only left, an acquire only right, Lipton 1975)
            yield StepRecord(WAIT, lock=lock)
        while self.lock_owner[lock] is not None:
            _put(actor, blocked_on=lock)
            yield StepRecord(WAIT, lock=lock)
            _put(actor, blocked_on=None)
        self.lock_owner[lock] = actor.name
        fields = actor.__dict__
        fields["held"] = actor.held + (lock,)
        fields["locked"] = True
        if lock == "bitmap_mutex":
            if is_freed(self.mig):
                # bitmap_mutex lives in RAMState: ram_state_cleanup destroyed it with the rest
                self.note_freed_access("RAMState.bitmap_mutex")
            self.ghost.bmap_pop_at_lock = self.bmap_popcount()
            if self.mig is not None:
                self._note_sync_mutex(actor, True)

    def release(self, lock: str) -> None:
        """Release ``lock`` held by the current actor."""
        actor = self.current
        if self.lock_owner[lock] != actor.name:
            raise ModelError("lock-order", f"{actor.name} releases {lock} it does not hold")
        self.lock_owner[lock] = None
        held = list(actor.held)
        held.remove(lock)
        fields = actor.__dict__
        fields["held"] = tuple(held)
        fields["released"] = True
        if lock == "bitmap_mutex" and self.mig is not None:
            self._note_sync_mutex(actor, False)
            # Truth for the period counter: bits that appeared in bmap while the mutex was held.
            grown = self.bmap_popcount() - self.ghost.bmap_pop_at_lock
            if grown > 0:
                self.ghost.period_new_bits += grown

    def precopy_notify(self, reason: str) -> Step:
        """``precopy_notify(reason)``: run every registered precopy notifier (none unless the
        guest hints free pages); a notifier's work is its own step(s)."""
        for notifier in list(self.precopy_notifiers):
            yield from notifier(self, reason)

    def wait_until(self, condition, what: str) -> Step:
        """End the step and wait until ``condition()`` holds (no step if it already does): a wait
        on other threads' progress (multifd's ``channels_ready`` and ``sem_sync``), not a lock."""
        if condition():
            return
        _put(self.current, until=condition)
        yield StepRecord(MULTIFD_WAIT, value=what)
        _put(self.current, until=None)

    def join(self, name: str) -> Step:
        """Wait until thread ``name`` has exited (``qemu_thread_join``); no step if it already has."""
        target = self.actors.get(name)
        if target is None or target.done:
            return
        _put(self.current, joining=name)
        yield StepRecord(JOIN, thread=name)
        _put(self.current, joining=None)

    def sleep_until(self, ms: int, clock: str = QEMU_CLOCK_REALTIME) -> Step:
        """End the step; the actor is not runnable before QEMU clock ``clock`` (impl/clocks.py;
        the realtime clock by default) reaches ``ms``. A deadline on a virtual clock is not
        reached while the VM is stopped."""
        _put(self.current, wake_clock=clock, wake_at_ms=ms)
        yield StepRecord(SLEEP, value=ms)

    def clock_get_ms(self, clock: str = QEMU_CLOCK_REALTIME) -> int:
        """``qemu_clock_get_ms(clock)``: the realtime clock, or a virtual one (stopped with the VM)."""
        return self.vm_clock.get_ms(clock, self.clock_ms)

    def _deadline_passed(self, actor: Actor) -> bool:
        if actor.wake_clock == QEMU_CLOCK_REALTIME:
            return self.clock_ms >= actor.wake_at_ms
        return self.vm_clock.get_ms(actor.wake_clock, self.clock_ms) >= actor.wake_at_ms

    def wake_time_ms(self, actor: Actor) -> int | None:
        """The realtime ms (``clock_ms``) at which ``actor``'s sleep deadline passes, ``None`` if
        it cannot while the VM stays stopped (a deadline on a virtual clock)."""
        return self._wake_realtime(actor)

    def _wake_realtime(self, actor: Actor) -> int | None:
        """See :meth:`wake_time_ms`."""
        if actor.wake_clock == QEMU_CLOCK_REALTIME:
            return actor.wake_at_ms
        if self.vm_clock.stopped_at is not None:
            return None
        return self.clock_ms + actor.wake_at_ms - self.vm_clock.get_ms(actor.wake_clock, self.clock_ms)

    # ------------------------------------------------------------------------------------------
    # the VM's run state, dirty logging and the migration's memory (model operations for designs)
    def vm_stop(self) -> None:
        """``vm_stop``: vCPUs and devices stop, and the virtual clocks with them. With the dirty
        ring, every vCPU leaves KVM_RUN: the exit flushes its buffer into its ring."""
        self.vm_running = False
        self.vm_clock.stop(self.clock_ms)
        for cpu in range(len(self.kvm.buffers)):
            self.kvm.flush_buffer(cpu)

    def vm_start(self) -> None:
        """``vm_start``: the VM runs again; a postponed dirty-log stop runs now, from the VM
        change-state handler (``memory_vm_change_state_handler``, ``system/memory.c``)."""
        self.vm_running = True
        self.vm_clock.start(self.clock_ms)
        if self.dirty_log_stop_postponed:
            self.dirty_log_stop_postponed = False
            self.kvm.log_stop()

    def memory_global_dirty_log_stop(self) -> None:
        """``memory_global_dirty_log_stop(GLOBAL_DIRTY_MIGRATION)``: stop dirty logging, or,
        while the VM is stopped, postpone the stop until the VM runs again (``system/memory.c``:
        a VM change-state handler runs it then). A completed migration leaves the source stopped,
        so its logging stays on."""
        if not self.kvm.logging:
            return
        if not self.vm_running:
            self.dirty_log_stop_postponed = True
            return
        self.kvm.log_stop()

    def ram_save_cleanup_free(self) -> None:
        """The frees of ``ram_save_cleanup`` (``migration/ram.c``): every RAMBlock's ``bmap`` and
        ``clear_bmap`` (and the design's bitmaps beside them), then ``ram_state_cleanup``: the
        RAMState with its ``bitmap_mutex``, ``ram_state = NULL``. A thread that touches any of it
        later breaks ``memory-safety`` (impl/freed.py)."""
        if self.lock_owner["bitmap_mutex"] is not None:
            raise ModelError("memory-safety", f"{self._actor_name() or 'cleanup'} frees RAMState while "
                             f"{self.lock_owner['bitmap_mutex']} holds its bitmap_mutex")
        for rb in self.blocks:
            free_bitmap(self, rb.bmap, f"{rb.idstr}.bmap")
            free_bitmap(self, rb.clear_bmap, f"{rb.idstr}.clear_bmap")
            for name, bm in rb.extra_bitmaps.items():
                free_bitmap(self, bm, f"{rb.idstr}.{name}")
        free_ram_state(self, self.mig)
        self.events.append(("freed", self.mig.attempt if self.mig is not None else 0))

    def _allocate_bitmaps(self) -> None:
        """``ram_list_init_bitmaps`` allocates: freed bitmaps are replaced by new ones. (The new
        memory keeps the freed content: the design's own initialisation decides what is in it, as
        ``bitmap_new`` + ``bitmap_set`` do in QEMU.)"""
        for rb in self.blocks:
            for name in ("bmap", "clear_bmap", *rb.extra_bitmaps):
                bm = getattr(rb, name)
                if is_freed(bm):
                    raw = object.__getattribute__        # the world's own read of the freed memory
                    fresh = Bitmap(raw(bm, "nbits"), word_bits=raw(bm, "word_bits"))
                    fresh.words[:] = raw(bm, "words")
                    setattr(rb, name, fresh)
                    if name in rb.extra_bitmaps:
                        rb.extra_bitmaps[name] = fresh

    def design_running(self) -> bool:
        """Whether design code is running a thread step now (not the world's own bookkeeping)."""
        return self._in_design

    def note_freed_access(self, what: str) -> None:
        """Record that the running thread touched freed migration state ``what``."""
        name = self._actor_name() or "a caller"
        self.events.append(("freed_access", name, what))

    # ------------------------------------------------------------------------------------------
    # layer operations shared by designs (each is part of one atomic step)
    def kvm_slot_sync_dirty_pages(self, slot) -> None:
        """OR a slot's L1c into L2 (QEMU's ``cpu_physical_memory_set_dirty_lebitmap``)."""
        mask = self.L2._range_mask_words(slot.start, slot.end)
        self.L2.words |= self.kvm.L1c.words & mask
        self.kvm.unsynced[slot.index] = False

    def kvm_cpu_synchronize_kick_all(self) -> None:
        """``kvm_cpu_synchronize_kick_all`` (dirty ring mode): every vCPU is kicked out of
        KVM_RUN and back, synchronously, so each buffer's pages are in the vCPU's ring now."""
        for cpu in range(len(self.kvm.buffers)):
            self.kvm.flush_buffer(cpu)
        self.ghost.ring_kick_region = self._log_sync_global_region()
        self.events.append(("ring_kick",))

    def kvm_dirty_ring_mark_page(self, page: int) -> None:
        """``kvm_dirty_ring_mark_page``: a harvested ring entry's page is set in its slot's
        dirty bitmap (``KVMSlot.dirty_bmap``, L1c), to be published by the next log sync."""
        if not isinstance(page, int) or isinstance(page, bool) or not 0 <= page < self.ram_pages:
            raise BadChoice(f"mark of page {page!r}: not a page of this world")
        slot = self.kvm.slot_of(page)
        self.kvm.L1c.set(page)
        self.kvm.unsynced[slot.index] = True

    def kvm_dirty_ring_harvest(self, cpu: int) -> list[int]:
        """QEMU reads vCPU ``cpu``'s ring: the pages of its dirty entries, each entry now flagged
        collected (``kvm_dirty_ring_reap_one`` marks each page, then flags the entry)."""
        buffered = tuple(p for b in self.kvm.buffers for p in b)
        pages = self.kvm.dirty_ring_harvest(cpu)
        r = self._log_sync_global_region()
        self.events.append(("ring_reap", cpu, tuple(pages), r is not None,
                            r is not None and r is self.ghost.ring_kick_region, buffered))
        return pages

    def kvm_reset_dirty_rings(self) -> int:
        """KVM_RESET_DIRTY_RINGS: collected entries are recycled and their pages write-protected
        again. Returns how many (QEMU asserts it is what it collected)."""
        recorded = self.kvm.L1c.test
        pages = self.kvm.reset_dirty_rings()
        self.events.append(("ring_reset", tuple((p, recorded(p)) for p in pages)))
        return len(pages)

    def kvm_slot_reset_dirty_pages(self, slot) -> None:
        """``kvm_slot_reset_dirty_pages`` (dirty ring mode): the slot's dirty bitmap (L1c) is
        zeroed after its publication (a GET would have overwritten it; a reap only adds bits)."""
        self.kvm.L1c.clear_range(slot.start, slot.end)
        self.kvm.unsynced[slot.index] = False

    def _log_sync_global_region(self):
        """The ``kvm_log_sync_global`` call the running thread is inside, or ``None``."""
        a = self.current
        return regions.innermost(a, "kvm_log_sync_global") if a is not None else None

    def remote_clear(self, start: int, end: int, mask: Bitmap | None = None) -> list[ClearEvent]:
        """``memory_region_clear_dirty_bitmap`` of ram_addr pages [start, end): one CLEAR per slot.

        Returns the CLEAR events (also recorded for the invariants)."""
        out = []
        for s in self.slots:
            if s.start < end and start < s.end:
                ev = self.kvm.clear_dirty_log(s, start, end, mask)
                if ev is not None:
                    out.append(ev)
                    self.events.append(("clear", ev))
        return out

    def read_page(self, page: int, queued: bool = False) -> int:
        """The sender reads ``page``'s content: returns the version read and records the read
        (the page is in flight, read and not yet delivered, until :meth:`deliver`). ``queued``:
        a multifd channel reads a page the migration thread queued; that consumes the queueing,
        not the marks other threads (a concurrent sync) hold for the page."""
        if not isinstance(page, int) or isinstance(page, bool) or not 0 <= page < self.ram_pages:
            raise BadChoice(f"read of page {page!r}: not a page of this world")
        v = int(self._src[page])
        self._read[page] = v
        self.events.append(("read", page, queued))
        self.ghost.reading(page, v, queued)
        return v

    def multifd_queued(self, page: int) -> None:
        """The migration thread queued ``page`` for a multifd channel (its content not read yet):
        it is in flight from now until a channel reads it (ghost)."""
        if not isinstance(page, int) or isinstance(page, bool) or not 0 <= page < self.ram_pages:
            raise BadChoice(f"queue of page {page!r}: not a page of this world")
        self.ghost.queueing(page)
        self.events.append(("queued", page))

    def deliver(self, page: int, version: int) -> None:
        """The destination receives ``page`` at ``version``, which must be what a
        :meth:`read_page` of it returned and no delivery used yet; the send is over and counted."""
        read = list(self.ghost.in_flight.get(page, ()))
        if not self.ghost.delivering(page, version):
            raise ModelError("send-integrity", f"{self._actor_name() or 'a caller'} delivers "
                             f"{self.page_name(page) if isinstance(page, int) else page} at v{version}, "
                             f"but the reads in flight of it are {read or 'none'}")
        # the destination writes whatever arrives (QEMU's receive side compares nothing); the
        # ghost remembers the newest version landed, for the landing-order property
        prev = self.ghost.landing(page, version)
        self.events.append(("landed", page, version, prev))
        self._dest[page] = version
        if self.mig is not None:
            self.mig.pages_sent += 1
            self.mig.bytes_transferred += TARGET_PAGE_SIZE
        self.total_sent += 1

    def _actor_name(self) -> str | None:
        return self.current.name if self.current is not None else None

    def bitmaps_armed(self) -> bool:
        """Whether the current attempt has started dirty logging, and logging is still on or the
        attempt is completing (then the destination takes over). A cancelled attempt, also one
        cancelled during its completion, is armed only while logging is on: its cleanup frees
        the bitmaps with the log stop."""
        mig = self.mig
        if mig is None or self.kvm.log_starts <= self._log_starts_at_attempt:
            return False
        return self.kvm.logging or (mig.phase in ("completing", "completed") and not mig.cancel_requested)

    def coverage_owed(self) -> bool:
        """Whether the current attempt owes coverage: its bitmaps are armed and it can still
        complete (after ``migrate_cancel`` its destination is thrown away: nothing is owed)."""
        return self.bitmaps_armed() and not self.mig.cancel_requested

    def _note_sync_mutex(self, actor, taken: bool) -> None:
        """Ghost of ``migration_bitmap_sync``'s ``bitmap_mutex`` section, kept from the thread's
        regions (no design call): taking the mutex directly inside a *background* sync (the
        method's ``background`` argument, background-v1's watcher) snapshots ``bmap`` and
        ``migration_dirty_pages``; releasing it records a ``sync_end`` event for the check that a
        background sync leaves them alone."""
        r = regions.innermost(actor, "migration_bitmap_sync", "ram_find_and_save_block",
                              "ram_save_page", "migration_bitmap_clear_dirty")
        if r is None or r.name != "migration_bitmap_sync":
            return
        if taken:
            # the log sync is over when a sync takes the mutex (the last stage's backup-bitmap rule)
            self.events.append(("sync_mutex", bool(r.arg("last_stage", 0, False))))
            background = bool(r.arg("background", 1, False))
            was, self._in_design = self._in_design, False     # the world's bookkeeping, not the design's access
            try:
                self.sync_begin = (actor.name, background,
                                   [rb.bmap.words.copy() for rb in self.blocks] if background else None,
                                   self.mig.migration_dirty_pages)
            finally:
                self._in_design = was
        elif self.sync_begin is not None and self.sync_begin[0] == actor.name:
            _, background, words, count = self.sync_begin
            self.events.append(("sync_end", (background, words, count)))
            self.sync_begin = None

    def bmap_popcount(self) -> int:
        """Set bits of every block's ``bmap`` (a read of the world's, never flagged as a design's)."""
        was, self._in_design = self._in_design, False
        try:
            return sum(rb.bmap.popcount() for rb in self.blocks)
        finally:
            self._in_design = was

    def block_of(self, page: int) -> RAMBlock:
        """The RAMBlock holding ram_addr ``page``."""
        bi = int(self.page_block[page])
        if bi < 0:
            raise BadChoice(f"page {page} is in no RAMBlock")
        return self.blocks[bi]

    # ------------------------------------------------------------------------------------------
    # environment actions
    def vcpu_write(self, page: int, cpu: int = 0) -> str:
        """A guest store to ``page`` by running vCPU ``cpu``: bumps the page's version; KVM may
        log it. With the dirty ring, a vCPU whose ring is full is in its KVM_EXIT_DIRTY_RING_FULL
        exit: it writes nothing until a reap recycles entries, and its exit wakes the reaper (in
        QEMU the vCPU thread reaps itself under the BQL, as the reaper does)."""
        if not self.vm_running:
            raise BadChoice("the VM is stopped: vCPUs do not write")
        self.block_of(page)
        kvm = self.kvm
        if kvm.ring_mode:
            if not 0 <= cpu < len(kvm.rings):
                raise BadChoice(f"vcpu{cpu}: this world has {len(kvm.rings)} vCPU(s)")
            if kvm.ring_full(cpu):
                self.wake(REAPER)
                return f"vcpu{cpu} waits in KVM_EXIT_DIRTY_RING_FULL (ring full): page {page} not written"
        self._src[page] += 1
        logged = kvm.guest_write(page, cpu)
        if not kvm.ring_mode:
            return f"write page {page} -> v{int(self._src[page])}" + (" (fault: L1 set)" if logged else "")
        return (f"vcpu{cpu} writes page {page} -> v{int(self._src[page])}"
                + (" (fault: GFN logged for the ring)" if logged else ""))

    def kvm_novcpu_write(self, page: int) -> str:
        """A write KVM makes to guest memory without a running vCPU (arm64's vGIC/ITS table
        save), in dirty ring mode with the backup bitmap: bumps the version; the backup bitmap
        (L1) logs it. The model lets it happen whenever the VM runs; QEMU's ITS save runs as the
        VM stops, before the last stage's sync, which is the same for what that sync finds."""
        if not self.kvm.with_bitmap:
            raise BadChoice("no writes without a vCPU here (dirty ring with the backup bitmap only)")
        if not self.vm_running:
            raise BadChoice("the VM is stopped: KVM writes nothing without a vCPU any more")
        self.block_of(page)
        self._src[page] += 1
        logged = self.kvm.write_without_vcpu(page)
        return f"KVM writes page {page} without a vCPU -> v{int(self._src[page])}" + (
            " (backup bitmap set)" if logged else "")

    def device_write(self, page: int) -> str:
        """A QEMU-side write (device DMA): bumps the version and sets L2 directly."""
        if not self.vm_running:
            raise BadChoice("the VM is stopped: devices do not write")
        self.block_of(page)
        self._src[page] += 1
        self.L2.set(page)
        return f"device writes page {page} -> v{int(self._src[page])}, L2 set"

    def guest_free_page_hint(self, page: int) -> str:
        """The guest's balloon driver reports ``page`` free (free-page hinting worlds only); if it
        did, the page is declared free at its current version (ghost)."""
        if self.balloon is None:
            raise BadChoice("this world's guest does not hint free pages (free_page_hinting is off)")
        if not self.vm_running:
            raise BadChoice("the VM is stopped: the guest does not hint")
        self.block_of(page)
        label, reported = self.balloon.guest_report(page)
        if reported:
            self.ghost.declare_free(page, int(self._src[page]))
        return label

    def advance_clock(self, ms: int) -> str:
        """The logical clock moves on by ``ms`` milliseconds."""
        if not isinstance(ms, int) or ms <= 0:
            raise BadChoice(f"clock step must be a positive number of ms, not {ms!r}")
        self.clock_ms += ms
        return f"clock +{ms} ms = {self.clock_ms} ms"

    def mgmt(self, command: str) -> str:
        """The management interface: ``start``, ``cancel`` or ``switchover`` (raise the downtime limit)."""
        if command == "start":
            if self.migration_active():
                raise BadChoice("a migration is already running")
            self.attempts += 1
            self.mig = MigrationState(attempt=self.attempts)
            self._dest[:] = -1      # a new destination: the old one was thrown away
            self._read[:] = -1
            self.ghost.new_attempt()
            self._start_multifd()
            self.ghost.period_start_ms = self.mig.time_last_bitmap_sync
            self._log_starts_at_attempt = self.kvm.log_starts
            self.actors = {k: a for k, a in self.actors.items() if not a.done}
            self.spawn("migration", self.design.migration_thread(self))
            return f"migrate (attempt {self.attempts})"
        if command == "cancel":
            if not self.can_cancel():
                raise BadChoice("nothing to cancel")
            self.mig.cancel_requested = True
            return "migrate_cancel"
        if command == "switchover":
            if not self.migration_active() or self.mig.downtime_raised:
                raise BadChoice("no running migration to switch over")
            self.mig.downtime_raised = True
            return "migrate_set_parameters downtime-limit=inf"
        raise BadChoice(f"unknown management command {command!r}")

    def _start_multifd(self) -> None:
        """``multifd_send_setup`` for a new attempt (``Config.multifd_channels`` > 0): a fresh
        send state and its channel threads; the previous attempt's channels, which its cleanup
        ended and joined (``multifd_send_shutdown``), are dropped."""
        n = self.config.multifd_channels
        if n == 0:
            return
        from .multifd import CHANNEL_PREFIX, MultiFDSendState, channel_name, multifd_send_thread
        self.actors = {k: a for k, a in self.actors.items() if not k.startswith(CHANNEL_PREFIX)}
        self.multifd = MultiFDSendState(n)
        for i in range(n):
            self.spawn(channel_name(i), multifd_send_thread(self, i))

    def migration_active(self) -> bool:
        """Whether a migration attempt is under way (its thread not finished)."""
        return "migration" in self.actors and not self.actors["migration"].done

    def can_cancel(self) -> bool:
        """Whether ``migrate_cancel`` would be taken: an attempt running and not yet completing."""
        if not self.migration_active() or self.mig.cancel_requested:
            return False
        # QMP runs under the BQL: during completion a cancel comes in only where it is free
        return self.mig.phase in ("setup", "wait_unplug", "active") or (
            self.mig.phase == "completing" and self.lock_owner["BQL"] is None)

    # ------------------------------------------------------------------------------------------
    # threads
    def spawn(self, name: str, gen: Iterator[str]) -> None:
        """Add a thread actor (the design's timer, watcher...), owned by the current attempt.

        A name whose previous thread still runs is refused: that thread outlived its attempt (or
        is started twice), which ``thread-lifetime`` reports."""
        old = self.actors.get(name)
        if old is not None and not old.done:
            whose = f"attempt {old.attempt}'s" if old.attempt else "a"
            raise ModelError("thread-lifetime", f"{self._actor_name() or 'migrate'} starts thread {name} "
                             f"while {whose} {name} still runs")
        self.actors[name] = Actor(name, gen, attempt=self.attempts)

    def wake(self, name: str) -> None:
        """``qemu_sem_post`` to thread ``name`` sleeping in a timed wait: its wait ends now."""
        t = self.actors.get(name)
        if t is not None and not t.done:
            _put(t, wake_clock=QEMU_CLOCK_REALTIME, wake_at_ms=0)

    def timer_del(self, name: str) -> bool:
        """``timer_del`` of the main-loop timer whose callbacks run as actor ``name`` (the caller
        holds the BQL, and a callback runs with the BQL held, so none is running): the timer never
        fires again, and its actor is over. Returns whether there was a live timer."""
        t = self.actors.get(name)
        if t is None or t.done:
            return False
        if t.held:
            raise ModelError("lock-order", f"timer {name} deleted while its callback holds {', '.join(t.held)}")
        t.gen.close()
        _put(t, done=True, blocked_on=None)
        self.events.append(("timer_del", name))
        return True

    def runnable(self, actor: Actor) -> bool:
        """Whether ``actor`` can take a step now."""
        if actor.done or not self._deadline_passed(actor):
            return False
        if (self.balloon is not None and actor.name == "iothread" and not actor.held
                and actor.blocked_on is None and not self.balloon.has_work(self)):
            return False          # idle between two elements: nothing queued, or the VM stopped
        if actor.joining is not None and not self.actors[actor.joining].done:
            return False
        if actor.until is not None and not actor.until():
            return False
        if self.multifd is not None and actor.name.startswith("multifd_send_") and actor.until is None:
            if not self.multifd.packet[int(actor.name.rsplit("_", 1)[1])] and not self.multifd.exiting:
                return False      # an idle channel: nothing handed to it, and not told to exit
        return actor.blocked_on is None or self.lock_owner[actor.blocked_on] is None

    def runnable_threads(self) -> list[str]:
        """Names of the thread actors that can step now."""
        return [n for n, a in self.actors.items() if self.runnable(a)]

    def lock_waiters(self) -> bool:
        """Whether some live thread waits for a lock or a join (a deadlock needs one)."""
        for a in self.actors.values():
            if (a.blocked_on is not None or a.joining is not None) and not a.done:
                return True
        return False

    def _waits_for(self, a: Actor) -> tuple[str, str] | None:
        """(what, whom) ``a`` waits for: the holder of the lock it wants, or the thread it joins."""
        if a.done:
            return None
        if a.blocked_on is not None:
            owner = self.lock_owner[a.blocked_on]
            return None if owner is None else (f"waits for {a.blocked_on} held by {owner}", owner)
        if a.joining is not None:
            t = self.actors.get(a.joining)
            return None if t is None or t.done else (f"joins {a.joining}", a.joining)
        return None

    def deadlock(self) -> str | None:
        """A cycle of threads each waiting for the next one (a lock it holds, or its exit),
        described; else ``None``."""
        for start in self.actors.values():
            seen, a = [], start
            while a is not None:
                edge = self._waits_for(a)
                if edge is None:
                    break
                seen.append(f"{a.name} {edge[0]}")
                if edge[1] == start.name:
                    return "; ".join(seen)
                a = self.actors.get(edge[1])
                if len(seen) > len(self.actors):
                    break
        return None

    def next_wakeup(self) -> int | None:
        """The earliest time a sleeping, otherwise runnable thread wakes (to advance the clock to)."""
        times = [t for a in self.actors.values()
                 if not a.done and not self._deadline_passed(a)
                 and (a.blocked_on is None or self.lock_owner[a.blocked_on] is None)
                 and (t := self._wake_realtime(a)) is not None and t > self.clock_ms]
        return min(times) if times else None

    def step_thread(self, name: str) -> str:
        """Run thread ``name`` up to its next ``yield``: one atomic step."""
        actor = self.actors.get(name)
        if actor is None or not self.runnable(actor):
            raise BadChoice(f"thread {name!r} cannot step now")
        self.current = actor
        fields = actor.__dict__           # the world's own writes (Actor.__setattr__ guards design code's)
        fields["released"] = False
        held_before = _may_hold_marks(actor)
        marks = self._mark_layers()
        self._in_design = True
        try:
            rec = as_step(next_step(actor))   # next(actor.gen), with a time limit and a type check
        except StopIteration:
            rec = StepRecord(EXIT)
            _put(actor, done=True)
            self.events.append(("exit", name))
            if actor.held:
                raise ModelError("lock-order", f"{name} exits holding {', '.join(actor.held)}")
        finally:
            self._in_design = False
            self.current = None
            fields["released"] = False      # per step only: between steps it is no state
        self._track_hands(actor, held_before, marks)
        fields["step"] = rec
        fields["label"] = label = rec.render(self)
        self.last_step = rec
        return label

    def _mark_layers(self) -> list:
        """The shared layers whose cleared bits go into the stepping actor's hands, with a copy
        of their words: L2 (a sync's fetch) and ``bmap`` (a send's take)."""
        # bytes, not array copies: most steps change neither layer, and comparing bytes is the
        # cheap way to see that (this runs on every thread step, and on every replayed one)
        out = [("fetched", 0, self.L2, self.L2.words.tobytes())]
        for rb in self.blocks:
            out.append(("taken", rb.offset, rb.bmap, rb.bmap.words.tobytes()))
        return out

    def _track_hands(self, actor: Actor, held_before: bool, marks: list) -> None:
        """After ``actor``'s step: marks it cleared inside a ``bitmap_mutex`` section or a page
        send go into its hands (minus pages it read in the step); leaving both empties them."""
        holds = _may_hold_marks(actor)
        if held_before or holds:
            hands = self.ghost.hands_of(actor.name)
            for kind, off, bm, before in marks:
                now = bm.words
                if now.tobytes() == before or now.nbytes != len(before):
                    continue              # unchanged (or reallocated: a different bitmap)
                gone = np.frombuffer(before, dtype=now.dtype) & ~now
                if gone.any():
                    pages = np.flatnonzero(np.unpackbits(gone.view(np.uint8), bitorder="little")) + off
                    getattr(hands, kind).update(int(p) for p in pages)
            for ev in self.events:
                if ev[0] == "read":
                    hands.discard(ev[1])
        if not holds:
            self.ghost.hands.pop(actor.name, None)

    # ------------------------------------------------------------------------------------------
    # one step of the schedule
    def step(self, choice) -> str:
        """Apply one choice ``[actor, arg]`` and return a one-line description of what happened."""
        if not isinstance(choice, (list, tuple)) or len(choice) != 2 or not isinstance(choice[0], str):
            raise BadChoice(f"a step is [actor, argument], not {choice!r}")
        who, arg = choice
        self.events = []
        self.last_step = None
        if who.startswith("vcpu"):
            if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg < self.ram_pages:
                raise BadChoice(f"page {arg!r} out of range")
            cpu = who[4:]
            label = self.vcpu_write(arg, int(cpu) if cpu.isdigit() and self.kvm.ring_mode else 0)
        elif who == NOVCPU:
            if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg < self.ram_pages:
                raise BadChoice(f"page {arg!r} out of range")
            label = self.kvm_novcpu_write(arg)
        elif who == "device":
            if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg < self.ram_pages:
                raise BadChoice(f"page {arg!r} out of range")
            label = self.device_write(arg)
        elif who == "guest-hint":
            if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg < self.ram_pages:
                raise BadChoice(f"page {arg!r} out of range")
            label = self.guest_free_page_hint(arg)
        elif who == "clock":
            label = self.advance_clock(arg)
        elif who == "mgmt":
            label = self.mgmt(arg)
        else:
            label = self.step_thread(who)
        self.steps += 1
        self.note_period(self.mig)
        return label

    def note_period(self, mig) -> None:
        """After a step: if QEMU's rate period restarted (``time_last_bitmap_sync`` moved), the
        period truth counts from zero again."""
        if mig is not None and mig.time_last_bitmap_sync != self.ghost.period_start_ms:
            self.ghost.period_start_ms = mig.time_last_bitmap_sync
            self.ghost.period_new_bits = 0

    # ------------------------------------------------------------------------------------------
    # helpers for invariants and reports
    def migration_done(self) -> bool:
        """Whether the current attempt completed (the destination holds the guest)."""
        return self.mig is not None and self.mig.phase == "completed"

    def page_name(self, page: int) -> str:
        """``page 70 (ram1+6)``: a page by ram_addr and by block."""
        bi = int(self.page_block[page]) if 0 <= page < self.ram_pages else -1
        if bi < 0:
            return f"page {page}"
        rb = self.blocks[bi]
        return f"page {page} ({rb.idstr}+{page - rb.offset})"

    def layer_bitmaps(self) -> dict[str, Bitmap]:
        """Every bitmap by a readable name, ram_addr-indexed ones first (for diffs of small worlds)."""
        out = {"L1": self.kvm.L1, "L1c": self.kvm.L1c, "WP": self.kvm.protected, "L2": self.L2}
        for rb in self.blocks:
            out[f"{rb.idstr}.bmap"] = rb.bmap
            out[f"{rb.idstr}.clear_bmap"] = rb.clear_bmap
            for n, bm in rb.extra_bitmaps.items():
                out[f"{rb.idstr}.{n}"] = bm
        return out

    def snapshot(self) -> dict:
        """A small-world snapshot of every layer and counter, for readable step diffs.

        Page bitmaps list ram_addr pages; ``clear_bmap`` lists chunk indices of its block."""
        snap = {k: bm.to_list() for k, bm in self.layer_bitmaps().items()}
        # Page bitmaps of a block are block-relative: report them as ram_addr pages like L1/L2,
        # so one number names one page across every layer of a diff.
        for rb in self.blocks:
            for name in ("bmap", *rb.extra_bitmaps):
                snap[f"{rb.idstr}.{name}"] = [p + rb.offset for p in snap[f"{rb.idstr}.{name}"]]
            snap[f"{rb.idstr}.clear_bmap(chunks)"] = snap.pop(f"{rb.idstr}.clear_bmap")
        if self.mig is not None:
            snap["migration_dirty_pages"] = self.mig.migration_dirty_pages
            snap["num_dirty_pages_period"] = self.mig.num_dirty_pages_period
        snap["throttle_pct"] = self.throttle_pct
        if self.kvm.ring_mode:
            for cpu, (ring, buf) in enumerate(zip(self.kvm.rings, self.kvm.buffers)):
                snap[f"vcpu{cpu}.ring"] = [f"{p}{'c' if c else ''}" for p, c in ring]
                snap[f"vcpu{cpu}.buffer"] = list(buf)
        return snap

    def bytes_per_page(self) -> int:
        """Target page size in bytes."""
        return TARGET_PAGE_SIZE


# Interface methods whose locals may hold dirty marks: a sync's fetched bits, a send's taken page.
_MARK_HOLDERS = frozenset(("migration_bitmap_sync", "ram_find_and_save_block"))


def _may_hold_marks(actor: Actor) -> bool:
    """Whether ``actor`` is where QEMU keeps dirty marks in local variables: inside a
    ``bitmap_mutex`` section, a sync (``migration_bitmap_sync``) or one page's send
    (``ram_find_and_save_block``: the page whose bit it took is read before it returns)."""
    return "bitmap_mutex" in actor.held or any(r.name in _MARK_HOLDERS for r in actor.regions)


def _read_only(a: np.ndarray) -> np.ndarray:
    """A view of ``a`` that cannot be written through (the world writes ``a`` itself)."""
    v = a.view()
    v.flags.writeable = False
    return v


def diff_snapshots(before: dict, after: dict) -> list[str]:
    """What changed between two :meth:`World.snapshot` results, one short phrase per layer."""
    out = []
    for k in after:
        a, b = before.get(k), after[k]
        if a == b:
            continue
        if isinstance(b, list):
            added = sorted(set(b) - set(a or []))
            removed = sorted(set(a or []) - set(b))
            parts = []
            if added:
                parts.append("+" + ",".join(map(str, added[:8])) + ("..." if len(added) > 8 else ""))
            if removed:
                parts.append("-" + ",".join(map(str, removed[:8])) + ("..." if len(removed) > 8 else ""))
            out.append(f"{k} {' '.join(parts)}")
        else:
            out.append(f"{k} {a}->{b}")
    return out

