"""HELD OUT (third set): designs that differ from the shipped ones and are still correct (the
false-alarm measures). HELD OUT: never tune a search on these (README.md).
"""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy, Periodic
from dirtyproof.impl.steps import BMAP_TAKE, COMPLETE_DRAINED, DELIVER, ITERATE_DONE, KVM_CLEAR, READ
from dirtyproof.impl.steps import Step as S

# KVM_CLEAR_DIRTY_LOG wants first_page 64-aligned (Linux kvm_clear_dirty_log_protect: -EINVAL on
# first_page & 63): a property of the ioctl, not of the host's word width
KVM_CLEAR_ALIGN = 64


class PeriodicSenderUnlocksForRead(Periodic):
    """The sender holds ``bitmap_mutex`` per page, only for the lookup, the owed clear and the take;
    the read and the delivery run unlocked.

    Differs from QEMU 9.2, where ``ram_save_iterate`` holds the mutex around the whole burst
    (migration/ram.c). Safe: the take comes before the read, as in ``ram_save_host_page``
    (``migration_bitmap_clear_dirty`` true, then ``ram_save_target_page``); a write after the take
    sets L1 (or was logged already), a sync between the take and the read moves it into ``bmap``
    again, and the page is resent later; the chunk's owed clear ran before the take, and a clear
    owed again by that sync runs before the page is taken next."""

    name = "h3-safe-sender-unlocks-for-read"
    summary = "periodic: bitmap_mutex per page for lookup, clear and take; the read and delivery unlocked"
    breaks = None

    def ram_save_iterate(self, w):
        """A burst with no ``bitmap_mutex`` around it (each page takes it)."""
        sent = yield from self.ram_save_burst(w)
        yield S(ITERATE_DONE, value=sent)

    def ram_find_and_save_block(self, w):
        """Lookup, owed clear and take under the mutex; then read and deliver without it."""
        yield from w.acquire("bitmap_mutex")
        found = self.find_dirty_page(w)
        if found is None:
            w.release("bitmap_mutex")
            return 0
        rb, page = found
        ret = yield from self.migration_bitmap_clear_dirty(w, rb, page)
        w.release("bitmap_mutex")
        if not ret:
            return 0
        yield from self.ram_save_page(w, rb, page)
        return 1

    def ram_save_complete(self, w):
        """Last-stage sync, then the drain page by page."""
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        while (yield from self.ram_find_and_save_block(w)):
            pass
        yield S(COMPLETE_DRAINED)


class LegacyReadBeforeTakeLocked(Legacy):
    """The sender reads a page before its ``bmap`` test-and-clear, all inside the burst's
    ``bitmap_mutex`` section.

    Differs from ``ram_save_host_page`` (migration/ram.c), which takes the bit first. Safe: no sync
    can run inside the section, the owed chunk clear still precedes the read, and a write between
    the read and the take is in L1 (the page was protected, or dirty and not fetched), so the next
    sync finds it; the take then only clears the bit the read already honoured."""

    name = "h3-safe-read-before-take-locked"
    summary = "legacy: the page is read before its bmap bit is taken, inside the burst's bitmap_mutex"
    breaks = None

    def ram_find_and_save_block(self, w):
        """Find; owed clear; read; take and count; deliver (caller holds ``bitmap_mutex``)."""
        found = self.find_dirty_page(w)
        if found is None:
            return 0
        rb, page = found
        yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        addr = rb.offset + page
        version = w.read_page(addr)
        yield S(READ, block=rb.index, page=addr, value=version)
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        yield S(BMAP_TAKE, block=rb.index, page=addr, value=ret)
        if not ret:
            return 0
        w.deliver(addr, version)
        yield S(DELIVER, block=rb.index, page=addr, value=version)
        return 1


class PeriodicPrevCountNotReset(Periodic):
    """The timer's remembered sync count survives from one migration to the next (Peter Xu's fixup
    of 52ac968ab28b reverted).

    52ac968ab28b ("migration: Support periodic RAMBlock dirty bitmap sync", QEMU 9.2) was applied
    with "[peterx: make prev_cnt global, and reset for each migration]"; here arming the timer does
    not reset it, so the first tick of a restarted migration may sync at once when the old count
    equals the new one. Safe: that is one more sync, under the BQL like every other; the syncs
    never overlap and each one keeps ``bmap``, ``clear_bmap`` and the counters as QEMU's does."""

    name = "h3-safe-prev-count-not-reset"
    summary = "periodic: the tick's remembered dirty_sync_count is not reset when the timer is armed"
    breaks = None

    def before_setup(self, w) -> None:
        """Arm the timer without resetting the remembered count."""
        if w.config.auto_converge:
            self.timer_armed = True
            w.spawn("timer", self.timer_loop(w))


class PeriodicTimerDefersSyncToMigrationThread(Periodic):
    """The tick does not sync; it asks the migration thread to, which syncs (BQL taken) before its
    next burst.

    Differs from ``cpu_throttle_dirty_sync_timer_tick`` (migration/cpu-throttle.c), which calls
    ``migration_bitmap_sync_precopy`` itself; this is the periodic timer joined with Peter Xu's
    reviewer alternative of syncing from ``ram_save_iterate``. Safe: the sync is the ordinary one,
    in the migration thread, with the BQL and then ``bitmap_mutex``; nothing races it."""

    name = "h3-safe-timer-defers-sync"
    summary = "periodic: the tick only requests a sync; the migration thread runs it before its next burst"
    breaks = None

    def attach(self, w) -> None:
        """Bind to the world; no sync requested."""
        super().attach(w)
        self.sync_requested = False

    def before_setup(self, w) -> None:
        """A new attempt starts with no request."""
        self.sync_requested = False
        super().before_setup(w)

    def cpu_throttle_dirty_sync_timer_tick(self, w):
        """The tick's condition as QEMU's; a request instead of the sync."""
        sync_cnt = w.mig.dirty_sync_count
        if sync_cnt > 1 and sync_cnt == self.throttle_dirty_sync_count_prev:
            self.sync_requested = True
        self.throttle_dirty_sync_count_prev = w.mig.dirty_sync_count
        return
        yield

    def ram_save_iterate(self, w):
        """A requested sync first (BQL, then the ordinary sync), then the burst."""
        if self.sync_requested:
            self.sync_requested = False
            yield from w.acquire("BQL")
            yield from self.migration_bitmap_sync_precopy(w, last_stage=False)
            w.release("BQL")
        yield from super().ram_save_iterate(w)


class LegacyClearAlignedRange(Legacy):
    """Each KVM_CLEAR_DIRTY_LOG covers its range widened to 64-page alignment within the slot.

    Differs from ``kvm_log_clear_one_slot`` (accel/kvm/kvm-all.c, ff4aa11419 "kvm: Support
    KVM_CLEAR_DIRTY_LOG", QEMU 4.1), which aligns the ioctl's start down to 64 pages but masks the
    pages outside the requested range out. Here the mask is QEMU's fetched copy over the widened
    range. Safe: the fetched copy holds only pages of the last GET whose chunk clear has not run
    (a chunk clear empties the copy over its range), so each page it re-protects early is still
    set in ``bmap`` and unread since the GET; a write after the early re-protection faults and is
    logged, and the page's read follows."""

    name = "h3-safe-clear-aligned-range"
    summary = "legacy: each CLEAR covers its range widened to 64-page alignment, mask the fetched copy"
    breaks = None

    def kvm_log_clear_one_slot(self, w, slot, start: int, end: int):
        """One CLEAR of the aligned range around [start, end) inside ``slot``."""
        lo = slot.start + (start - slot.start) // KVM_CLEAR_ALIGN * KVM_CLEAR_ALIGN
        hi = min(slot.end, lo + -(-(end - lo) // KVM_CLEAR_ALIGN) * KVM_CLEAR_ALIGN)
        yield from w.acquire("slots_lock")
        w.remote_clear(lo, hi)
        w.release("slots_lock")
        yield S(KVM_CLEAR, slot=slot.index, start=lo, end=hi)


class PeriodicTimerSkipsSlowPathBlocks(Periodic):
    """The timer's sync fetches KVM's log for every memslot but moves only the fast-path blocks'
    L2 bits into ``bmap``; slow-path blocks wait in L2 for the migration thread's next sync.

    Differs from ``migration_bitmap_sync`` (migration/ram.c), which syncs every RAMBlock
    (``ramblock_sync_dirty_bitmap`` for each), whoever calls it; the idea is to keep the tick short
    (the page-by-page slow path is the expensive one) while the throttle still sees the big,
    aligned blocks' rate. Safe: the skipped pages stay marked in L2 (a layer the next sync
    reads), the tick owes no clear for them, and the next sync's per-page clear uses the copy of
    its own GET; nothing is taken out of any layer without being put into ``bmap``."""

    name = "h3-safe-timer-skips-slow-path-blocks"
    summary = "periodic: the timer's sync leaves slow-path blocks' bits in L2 for the next sync"
    breaks = None

    def ramblock_sync_dirty_bitmap(self, w, rb):
        """On the timer, slow-path blocks are skipped; otherwise as QEMU's."""
        if not rb.fast_path and w.current is not None and w.current.name == "timer":
            return
        yield from super().ramblock_sync_dirty_bitmap(w, rb)
