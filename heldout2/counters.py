"""Held-out broken designs whose dirty-rate counter goes wrong (the period count the throttle reads).

HELD OUT: never tune a search on these (see README.md).
"""
from __future__ import annotations

from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import Legacy, Periodic
from dirtyproof.impl.steps import CLEAR_BMAP_SET, L2_XCHG
from dirtyproof.impl.steps import Step as S


class PeriodicTimerZeroesIdlePeriod(Periodic):
    """A tick that does not sync zeroes ``num_dirty_pages_period`` without starting a new period.

    The mistake: the author of a dirty-rate report wants the tick to drop a stale period count
    when another sync already ran in the last 5 s ("the migration thread is syncing on its own,
    the timer's period is over"), and zeroes ``num_dirty_pages_period`` in the tick's no-sync
    branch. In QEMU the count is reset only together with ``time_last_bitmap_sync`` at the end of
    ``migration_bitmap_sync`` when the 1 s period is over (migration/ram.c), so the count always
    covers the bits newly set since the period began; the tick
    (``cpu_throttle_dirty_sync_timer_tick``, migration/cpu-throttle.c) only decides whether to sync.

    Why it breaks: a sync less than 1 s into a period adds its new pages to the count; the tick
    then finds ``dirty_sync_count`` moved, skips the sync and zeroes the count while the period
    (and the pages it saw) goes on. The next throttle decision reads too few dirty pages. Expected
    violated property: ``period-counter``.
    """

    name = "heldout2-timer-zeroes-idle-period"
    summary = "a periodic tick that does not sync zeroes num_dirty_pages_period mid-period"
    breaks = "period-counter"

    def cpu_throttle_dirty_sync_timer_tick(self, w):
        """QEMU's tick; in the branch that does not sync, the period count is zeroed too."""
        sync_cnt = w.mig.dirty_sync_count
        if sync_cnt > 1 and sync_cnt == self.throttle_dirty_sync_count_prev:
            yield from self.migration_bitmap_sync_precopy(w, last_stage=False)
        elif sync_cnt > 1:
            w.mig.num_dirty_pages_period = 0
        self.throttle_dirty_sync_count_prev = w.mig.dirty_sync_count


class LegacyPeriodCountsFetchedBits(Legacy):
    """The period counter counts every dirty bit fetched from L2, not only the bits new to ``bmap``.

    The mistake: a port of the dirty-rate measurement's counting (``calc-dirty-rate`` in
    dirty-bitmap mode counts every page the log reports dirty, migration/dirtyrate.c) into the
    sync, so that ``num_dirty_pages_period`` "measures the real dirty rate": it adds
    ``popcount(bits)`` per fetched L2 word (and every dirty slow-path page) where QEMU adds
    ``popcount(bits & ~bmap)`` (``num_dirty`` of ``cpu_physical_memory_sync_dirty_bitmap``,
    include/exec/ram_addr.h; ``ramblock_sync_dirty_bitmap`` adds it to both counters).
    ``migration_dirty_pages`` keeps the new-bits count.

    Why it breaks: a page dirtied again before the sender took its previous mark is fetched while
    its ``bmap`` bit is still set: QEMU does not count it (it costs nothing more to send), this
    design does, and the throttle sees a higher rate than the bitmaps grew. Expected violated
    property: ``period-counter``.
    """

    name = "heldout2-period-counts-fetched-bits"
    summary = "num_dirty_pages_period counts every fetched dirty bit, not only pages new to bmap"
    breaks = "period-counter"
    # declared design state: the fetched dirty bits of the block being synced
    fetched_bits: int = 0

    def ramblock_sync_dirty_bitmap(self, w, rb):
        """New pages to ``migration_dirty_pages``; every fetched dirty bit to the period."""
        self.fetched_bits = 0
        n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        w.mig.migration_dirty_pages += n
        w.mig.num_dirty_pages_period += self.fetched_bits

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        """QEMU's walk, also counting every fetched dirty bit in ``fetched_bits``."""
        num_dirty = 0
        if rb.fast_path:
            base = rb.offset // rb.word_bits
            for k in range(rb.words()):
                if w.L2.word(base + k, rb.word_bits):
                    bits = w.L2.xchg_word(base + k, 0, rb.word_bits)
                    old = rb.bmap.word(k)
                    num_dirty += (bits & ~old & WORD_MASK).bit_count()
                    self.fetched_bits += (bits & WORD_MASK).bit_count()
                    rb.bmap.set_word(k, old | bits)
                    yield S(L2_XCHG, block=rb.index, word=base + k)
            rb.clear_bmap.fill(True)
            yield S(CLEAR_BMAP_SET, block=rb.index)
        else:
            for k in range(rb.pages):
                dirty = yield from self.sync_one_page(w, rb, k)
                if dirty:
                    self.fetched_bits += 1
                    if not rb.bmap.test_and_set(k):
                        num_dirty += 1
        return num_dirty
