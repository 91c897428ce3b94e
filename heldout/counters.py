"""HELD OUT. Racing counters: ``migration_dirty_pages`` updated outside ``bitmap_mutex`` or by two
actors at once. Never tune a search on these designs; they exist to measure."""
from __future__ import annotations

from dirtyproof.impl.designs import Periodic
from dirtyproof.impl.designs.base import Step


class PeriodicTimerSyncNoBitmapMutex(Periodic):
    """The timer's sync skips ``bitmap_mutex`` ("the BQL is held, nobody else syncs").

    Scenario: the timer's sync moves L2 words into ``bmap`` and adds the block's new pages to
    ``migration_dirty_pages`` only at the end of the block, without ``bitmap_mutex``. Between its
    word step and its count, the counter and ``bmap`` disagree while the mutex is free, and the
    sender (which holds ``bitmap_mutex`` but not the BQL) decides on and decrements a counter the
    timer is about to overwrite with its own sum.

    Modelled from ``migration/ram.c`` ``migration_bitmap_sync`` (``WITH_QEMU_LOCK_GUARD(&rs->bitmap_mutex)``
    around the ``ramblock_sync_dirty_bitmap`` loop) and the 9.2 timer tick (52ac968ab28b); the
    variant calls the block loop from the tick with only the BQL, which is the pre-2019 assumption
    that only the migration thread touches the bitmap (Wei Wang's 2019 "migration: use bitmap_mutex in
    migration_bitmap_clear_dirty" for free-page hinting; hash not in the stored archive).
    """

    name = "heldout-periodic-timer-sync-no-bitmap-mutex"
    summary = "held out: the timer's sync updates bmap and migration_dirty_pages without bitmap_mutex"
    breaks = "dirty-pages-count"

    def cpu_throttle_dirty_sync_timer_tick(self, w) -> Step:
        sync_cnt = w.mig.dirty_sync_count
        if sync_cnt > 1 and sync_cnt == self.throttle_dirty_sync_count_prev:
            mig = w.mig
            mig.dirty_sync_count += 1
            yield from self.memory_global_dirty_log_sync(w)
            for rb in w.blocks:                  # no bitmap_mutex
                yield from self.ramblock_sync_dirty_bitmap(w, rb)
            self.after_sync(w)
            yield "timer: migration_bitmap_sync done (bitmap_mutex never taken)"
        self.throttle_dirty_sync_count_prev = w.mig.dirty_sync_count


class PeriodicUnlockedDirtyPagesRMW(Periodic):
    """Pre-2019 accounting against the 9.2 timer: the sender clears ``bmap`` bits and decrements
    ``migration_dirty_pages`` without ``bitmap_mutex``, while a sync's ``+=`` of the block's new
    pages is a load and a store (C's ``rs->migration_dirty_pages += n`` is not atomic).

    Scenario: the timer's sync, holding ``bitmap_mutex``, loads the counter to add block B's new
    pages. The migration thread (no mutex) sends a page: ``bmap`` bit cleared, counter decremented.
    The timer stores load + n: the decrement is lost and the counter stays one above ``bmap``'s
    popcount; the migration thread's pending estimate is wrong from then on.

    Modelled from ``migration/ram.c`` as it was before the 2019 free-page-hint commit that took ``bitmap_mutex`` in
    ``migration_bitmap_clear_dirty`` (to keep ``qemu_guest_free_page_hint`` and the migration thread
    from racing on ``bmap`` and ``migration_dirty_pages``), which Peter Xu's "migration: Move
    bitmap_mutex out of migration_bitmap_clear_dirty()" (qemu-devel PULL 6/6, 13 Jul 2021,
    lists.gnu.org/archive/html/qemu-devel/2021-07/msg03533.html) then moved up into
    ``ram_save_iterate``: ``ram_save_iterate`` and ``ram_save_complete`` here take no
    ``bitmap_mutex``; the concurrent syncer is the 9.2 timer (52ac968ab28b).
    """

    name = "heldout-periodic-unlocked-dirty-pages-rmw"
    summary = "held out: sender decrements without bitmap_mutex while a timer sync's += is a load/store"
    breaks = "dirty-pages-count"

    def ramblock_sync_dirty_bitmap(self, w, rb) -> Step:
        n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        cur = w.mig.migration_dirty_pages
        yield f"{rb.idstr}: load migration_dirty_pages ({cur}) to add {n}"
        w.mig.migration_dirty_pages = cur + n
        w.mig.num_dirty_pages_period += n

    def ram_save_iterate(self, w) -> Step:
        sent = yield from self.ram_save_burst(w)
        yield f"ram_save_iterate: {sent} page(s) (no bitmap_mutex)"

    def ram_save_complete(self, w) -> Step:
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        while (yield from self.ram_find_and_save_block(w)):
            pass
        yield "ram_save_complete: bmap empty"
