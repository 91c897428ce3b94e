"""HELD OUT (third set): races of a second syncing actor, QEMU 9.2's dirty-sync timer.

The timer is the main loop's ``cpu_throttle_dirty_sync_timer_tick`` (migration/cpu-throttle.c,
52ac968ab28b "migration: Support periodic RAMBlock dirty bitmap sync", Hyman Huang, QEMU 9.2): it
syncs, BQL held, while the migration thread sends with only ``bitmap_mutex``. Each design is read
beside migration/ram.c (``migration_bitmap_sync``, ``ramblock_sync_dirty_bitmap``,
``migration_bitmap_clear_dirty``, ``ram_save_iterate``, ``ram_save_target_page``) and
include/exec/ram_addr.h (``cpu_physical_memory_sync_dirty_bitmap``); QEMU's code is not copied.
HELD OUT: never tune a search on these (README.md).
"""
from __future__ import annotations

from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.clocks import QEMU_CLOCK_VIRTUAL_RT
from dirtyproof.impl.designs import Periodic, Qemu110
from dirtyproof.impl.designs.periodic import CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS
from dirtyproof.impl.steps import (BMAP_TAKE, COMPLETE_DRAINED, DELIVER, ITERATE_DONE, L2_TEST_AND_CLEAR,
                                   L2_XCHG, READ, TIMER_RETURN)
from dirtyproof.impl.steps import Step as S


def on_timer(w) -> bool:
    """Whether the thread taking the current step is the dirty-sync timer."""
    return w.current is not None and w.current.name == "timer"


class PeriodicTimerTickWithoutBQL(Periodic):
    """The timer's callback runs in a thread of its own and syncs without taking the BQL.

    Mistake: the periodic sync is run from a dedicated thread of its own that calls
    ``migration_bitmap_sync_precopy`` without ``bql_lock()`` (the sync "only needs
    ``bitmap_mutex``"). QEMU: the callback is a ``QEMU_CLOCK_VIRTUAL_RT`` timer of the main
    loop, so it runs with the BQL held, and ``cpu_throttle_dirty_sync_timer(false)`` (from
    ``cpu_throttle_stop`` in ``migration_iteration_finish``, BQL held) deletes it while no callback
    can be running. Here the cleanup's ``timer_del`` can come while the thread is inside a sync:
    with a lock held the deletion is refused (the callback goes on into the freed RAMState and
    bitmaps, or the cleanup frees ``bitmap_mutex`` under it), and a sync can also straddle the
    completion. Scenario: a tick syncs (the count stuck since the exact sync), the migration thread
    completes or is cancelled meanwhile, and its cleanup runs while the tick is between its steps."""

    name = "h3-timer-tick-without-bql"
    summary = "periodic: the dirty-sync tick runs in its own thread without the BQL"
    breaks = "memory-safety"

    def timer_loop(self, w):
        """Every 5 s of ``QEMU_CLOCK_VIRTUAL_RT``, the tick, with no BQL around it."""
        period = w.config.dirty_sync_timer_ms or CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS
        while self.timer_armed:
            yield from w.sleep_until(w.clock_get_ms(QEMU_CLOCK_VIRTUAL_RT) + period, clock=QEMU_CLOCK_VIRTUAL_RT)
            yield from self.cpu_throttle_dirty_sync_timer_tick(w)
            yield S(TIMER_RETURN)


class PeriodicTimerDefersClearToNextTick(Periodic):
    """The timer's fast-path sync owes no chunk clear; the tick re-protects the blocks it synced at
    its next firing instead (a clear done by the wrong thread, at the wrong time).

    Mistake: to keep the KVM_CLEAR_DIRTY_LOG ioctls out of the migration thread's bursts, the tick
    does not set ``clear_bmap`` after moving L2 into ``bmap``; it remembers the blocks and clears
    them whole at the start of its next firing. QEMU (include/exec/ram_addr.h,
    ``cpu_physical_memory_sync_dirty_bitmap``, since 002cad6b16 "migration: Split log_clear() into
    smaller chunks", QEMU 4.1) sets every ``clear_bmap`` bit of the block inside the sync, and the
    sender does the owed clear of a chunk before it reads any page of it
    (``migration_clear_memory_region_dirty_bitmap`` from ``migration_bitmap_clear_dirty``).
    Scenario (manual or initially-set KVM mode): a tick fetches page P (L1 stays set, P
    unprotected), the sender reads P with no clear owed, the guest rewrites P (no fault, no new
    mark but L1's), and the next tick's deferred CLEAR (mask: the fetched copy, P in it) erases
    L1's bit before any sync fetched it: the rewrite is lost."""

    name = "h3-timer-defers-clear-to-next-tick"
    summary = "periodic: the tick's sync owes no chunk clear; the tick clears its blocks at its next firing"
    breaks = "coverage"

    def attach(self, w) -> None:
        """Bind to the world; no clear deferred yet."""
        super().attach(w)
        self.deferred_clear: list[tuple[int, int]] = []

    def before_setup(self, w) -> None:
        """A new attempt defers nothing from the last one."""
        self.deferred_clear = []
        super().before_setup(w)

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        """On the timer's fast path: L2 words into ``bmap`` as usual, no ``clear_bmap`` bit set, the
        block remembered for the next tick. Otherwise as the base."""
        if not (rb.fast_path and on_timer(w)):
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset // rb.word_bits
        for k in range(rb.words()):
            if w.L2.word(base + k, rb.word_bits):
                bits = w.L2.xchg_word(base + k, 0, rb.word_bits)
                old = rb.bmap.word(k)
                num_dirty += (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                yield S(L2_XCHG, block=rb.index, word=base + k)
        self.deferred_clear.append((rb.offset, rb.offset + rb.pages))
        return num_dirty

    def cpu_throttle_dirty_sync_timer_tick(self, w):
        """First the CLEARs the previous tick's sync deferred, then the tick as QEMU's."""
        pending, self.deferred_clear = self.deferred_clear, []
        for start, end in pending:
            yield from self.memory_region_clear_dirty_bitmap(w, start, end)
        yield from super().cpu_throttle_dirty_sync_timer_tick(w)


class PeriodicTimerCountAddedBySender(Periodic):
    """The timer's sync leaves ``migration_dirty_pages`` to the migration thread (a count done by
    the wrong thread).

    Mistake: the tick's sync adds the pages it newly set in ``bmap`` to a side counter, and the
    migration thread folds it into ``migration_dirty_pages`` when it next enters
    ``ram_save_iterate`` (so that only one thread writes the counter). QEMU:
    ``ramblock_sync_dirty_bitmap`` (migration/ram.c) adds the block's new pages to
    ``migration_dirty_pages`` inside the sync's ``bitmap_mutex`` section, whichever thread syncs.
    Scenario: any tick that moves a new bit into ``bmap``: when the tick releases
    ``bitmap_mutex`` the counter is short of ``bmap``'s popcount until the sender's next burst."""

    name = "h3-timer-count-added-by-sender"
    summary = "periodic: the tick's new dirty pages are added to migration_dirty_pages by the sender later"
    breaks = "dirty-pages-count"

    def attach(self, w) -> None:
        """Bind to the world; nothing carried."""
        super().attach(w)
        self.timer_new_pages = 0

    def before_setup(self, w) -> None:
        """A new attempt carries nothing over."""
        self.timer_new_pages = 0
        super().before_setup(w)

    def ramblock_sync_dirty_bitmap(self, w, rb):
        """On the timer: the period counted here, the dirty-page count carried for the sender."""
        if not on_timer(w):
            yield from super().ramblock_sync_dirty_bitmap(w, rb)
            return
        n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        self.timer_new_pages += n
        w.mig.num_dirty_pages_period += n

    def ram_save_iterate(self, w):
        """Fold the tick's count in under ``bitmap_mutex``, then the burst as usual."""
        yield from w.acquire("bitmap_mutex")
        w.mig.migration_dirty_pages += self.timer_new_pages
        self.timer_new_pages = 0
        sent = yield from self.ram_save_burst(w)
        w.release("bitmap_mutex")
        yield S(ITERATE_DONE, value=sent)


class PeriodicUnlockedReadBeforeTake(Periodic):
    """The sender reads a page before it takes the page's ``bmap`` bit, with ``bitmap_mutex``
    dropped between the two (a step moved out of the critical section and reordered).

    Mistake: ``bitmap_mutex`` is taken per page, not per burst (as the QEMU 3.1-era code did), and
    the page's content is read between the lookup and the test-and-clear, outside the mutex, so
    the ioctl-free read does not hold up a sync. QEMU: ``ram_save_target_page`` runs after
    ``migration_bitmap_clear_dirty`` returned true (migration/ram.c, ``ram_save_host_page``), so a
    write after the read sets a bit that a later sync moves into ``bmap`` after the take.
    Scenario: the sender reads P; the guest rewrites P; the timer's sync fetches P into ``bmap``
    (the bit is still set there); the sender's take then clears that bit, and the rewrite's only
    mark is gone (legacy mode: the GET cleared L1 at once; manual mode: at the next chunk CLEAR)."""

    name = "h3-unlocked-read-before-take"
    summary = "periodic: per-page bitmap_mutex, the page read before its bmap bit is taken, unlocked"
    breaks = "coverage"

    def ram_save_iterate(self, w):
        """A burst with no ``bitmap_mutex`` around it (each page takes it)."""
        sent = yield from self.ram_save_burst(w)
        yield S(ITERATE_DONE, value=sent)

    def ram_find_and_save_block(self, w):
        """Under the mutex: find, the owed chunk clear; unlocked: the read; under the mutex again:
        the ``bmap`` test-and-clear and the count; then the delivery of what was read."""
        yield from w.acquire("bitmap_mutex")
        found = self.find_dirty_page(w)
        if found is None:
            w.release("bitmap_mutex")
            return 0
        rb, page = found
        yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        w.release("bitmap_mutex")
        addr = rb.offset + page
        version = w.read_page(addr)
        yield S(READ, block=rb.index, page=addr, value=version)
        yield from w.acquire("bitmap_mutex")
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        w.release("bitmap_mutex")
        yield S(BMAP_TAKE, block=rb.index, page=addr, value=ret)
        if not ret:
            return 0
        w.deliver(addr, version)
        yield S(DELIVER, block=rb.index, page=addr, value=version)
        return 1

    def ram_save_complete(self, w):
        """Last-stage sync, then the drain page by page (each page takes the mutex)."""
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        while (yield from self.ram_find_and_save_block(w)):
            pass
        yield S(COMPLETE_DRAINED)


class PeriodicCountSnapshotAcrossClear(Periodic):
    """The sender reads ``migration_dirty_pages`` before the owed chunk clear and writes it back,
    minus one, after it, with ``bitmap_mutex`` dropped across the ioctl (a lost update).

    Mistake: so that KVM_CLEAR_DIRTY_LOG does not run under ``bitmap_mutex``, the sender takes the
    mutex per page, looks the page up and reads the remaining count, drops the mutex for the owed
    chunk clear, takes it again and stores the count it read minus the page. QEMU
    (``migration_bitmap_clear_dirty``, migration/ram.c; Wei Wang's "use bitmap_mutex in
    migration_bitmap_clear_dirty", QEMU 3.1) does the clear, the test-and-clear and the decrement
    in one ``bitmap_mutex`` section. Scenario: the timer's sync takes the mutex in that gap and adds
    its new pages to the counter; the sender's store overwrites them: the counter is short of
    ``bmap``'s popcount (which, with the mutex free, the count must equal)."""

    name = "h3-count-snapshot-across-clear"
    summary = "periodic: the sender's count is read before the chunk clear and stored after it, mutex dropped between"
    breaks = "dirty-pages-count"

    def ram_save_iterate(self, w):
        """A burst with no ``bitmap_mutex`` around it (each page takes it twice)."""
        sent = yield from self.ram_save_burst(w)
        yield S(ITERATE_DONE, value=sent)

    def ram_find_and_save_block(self, w):
        """Lookup and count read under the mutex; the owed clear without it; the take, the stored
        count and the send under it again."""
        yield from w.acquire("bitmap_mutex")
        found = self.find_dirty_page(w)
        if found is None:
            w.release("bitmap_mutex")
            return 0
        rb, page = found
        remaining = w.mig.migration_dirty_pages
        w.release("bitmap_mutex")
        yield "lookup done, migration_dirty_pages read, bitmap_mutex dropped"
        yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        yield from w.acquire("bitmap_mutex")
        ret = rb.bmap.test_and_clear(page)
        w.mig.migration_dirty_pages = remaining - 1 if ret else remaining
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        if ret:
            yield from self.ram_save_page(w, rb, page)
        w.release("bitmap_mutex")
        return 1 if ret else 0

    def ram_save_complete(self, w):
        """Last-stage sync, then the drain page by page."""
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        while (yield from self.ram_find_and_save_block(w)):
            pass
        yield S(COMPLETE_DRAINED)


class Qemu110BlockClearAfterMutex(Qemu110):
    """QEMU 11.0's merged slow-path clear, moved after the sync's ``bitmap_mutex`` section.

    Mistake: e8a6d158dbfa ("migration: merge fragmented clear_dirty ioctls", Chuang Xu, QEMU 11.0)
    makes one ``memory_region_clear_dirty_bitmap`` per slow-path block inside the sync; here the
    merged clears are issued after ``migration_bitmap_sync`` released ``bitmap_mutex`` (so the
    ioctls do not hold up the sender). For the migration thread's own syncs nothing can happen in
    between (it clears before its next send); the timer's sync races the sender. Scenario (manual
    or initially-set mode): the timer moves a slow-path page P into ``bmap`` and drops the mutex;
    the sender reads P (no owed chunk clear on the slow path); the guest rewrites P (unprotected
    since the GET: no fault); the timer's CLEAR (mask: the fetched copy, P in it) erases L1's bit,
    the rewrite's only mark."""

    name = "h3-qemu-11.0-block-clear-after-mutex"
    summary = "qemu-11.0: the merged slow-path clear runs after the sync drops bitmap_mutex"
    breaks = "coverage"

    def attach(self, w) -> None:
        """Bind to the world; no clear owed."""
        super().attach(w)
        self.owed_blocks: list[tuple[int, int]] = []

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        """Fast path as before; slow path: the per-page L2 -> ``bmap`` loop of 11.0, the block's
        clear left for after the mutex section."""
        if rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        for k in range(rb.pages):
            page = rb.offset + k
            if not w.L2.test(page):
                continue
            w.L2.test_and_clear(page)
            if not rb.bmap.test_and_set(k):
                num_dirty += 1
            yield S(L2_TEST_AND_CLEAR, block=rb.index, page=page, value=True, into="bmap")
        self.owed_blocks.append((rb.offset, rb.offset + rb.pages))
        return num_dirty

    def migration_bitmap_sync(self, w, last_stage: bool = False):
        """The sync as before, then (mutex released, BQL still held) the merged clears."""
        yield from super().migration_bitmap_sync(w, last_stage)
        owed, self.owed_blocks = self.owed_blocks, []
        for start, end in owed:
            yield from self.memory_region_clear_dirty_bitmap(w, start, end)
