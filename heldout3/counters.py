"""HELD OUT (third set): counters that the sync keeps wrong (``num_dirty_pages_period`` and
``migration_dirty_pages``, migration/ram.c). HELD OUT: never tune a search on these (README.md).
"""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy


class LegacyPeriodCountedAfterRollover(Legacy):
    """The sync adds its new pages to the rate period after the throttle check has rolled the period.

    Mistake: ``ramblock_sync_dirty_bitmap`` keeps the block's new-page count aside and the tail of
    ``migration_bitmap_sync`` adds it to ``num_dirty_pages_period`` after
    ``migration_trigger_throttle`` and the period reset. QEMU (migration/ram.c,
    ``ramblock_sync_dirty_bitmap`` and ``migration_bitmap_sync``): the count goes into the period
    inside the ``bitmap_mutex`` section, so the throttle decision of the period that ends with
    this sync sees this sync's pages, and the next period starts at 0. Scenario: any sync that
    ends a period (more than 1 s since ``time_last_bitmap_sync``) and finds a new page: the new
    period starts with that page's count, which the throttle will judge against the next period."""

    name = "h3-period-counted-after-rollover"
    summary = "legacy: a sync's new pages go into the rate period after the period was rolled"
    breaks = "period-counter"

    def attach(self, w) -> None:
        """Bind to the world; nothing kept aside."""
        super().attach(w)
        self.period_pending = 0

    def ramblock_sync_dirty_bitmap(self, w, rb):
        """L2 -> ``bmap``; the dirty-page count as QEMU's, the period's kept for the tail."""
        n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        w.mig.migration_dirty_pages += n
        self.period_pending += n

    def after_sync(self, w) -> None:
        """QEMU's tail (throttle, period roll), then the period count."""
        super().after_sync(w)
        w.mig.num_dirty_pages_period += self.period_pending
        self.period_pending = 0


class LegacyLastStageUncounted(Legacy):
    """The last-stage sync does not count the pages it sets in ``bmap``.

    Mistake: with the VM stopped the pending size no longer decides anything, so the last sync
    skips ``migration_dirty_pages`` and the period count. QEMU: ``ramblock_sync_dirty_bitmap``
    counts on every sync, the last stage's too (migration/ram.c), and ``ram_save_complete``'s
    drain decrements the counter per page sent (``migration_bitmap_clear_dirty``), so the counter
    must keep equal to ``bmap``'s popcount (what ``query-migrate``'s remaining RAM reports).
    Scenario: any page written between the exact-pending sync and ``vm_stop``: the last sync sets
    its bit, the count stays behind, and the check fails when the sync releases ``bitmap_mutex``."""

    name = "h3-last-stage-uncounted"
    summary = "legacy: the last-stage sync does not add its new pages to migration_dirty_pages"
    breaks = "dirty-pages-count"

    def attach(self, w) -> None:
        """Bind to the world."""
        super().attach(w)
        self.uncounted = False

    def migration_bitmap_sync(self, w, last_stage: bool = False):
        """Remember whether this is the last stage, then the sync."""
        self.uncounted = last_stage
        yield from super().migration_bitmap_sync(w, last_stage)
        self.uncounted = False

    def ramblock_sync_dirty_bitmap(self, w, rb):
        """As QEMU's, but the last stage's new pages are not counted."""
        if not self.uncounted:
            yield from super().ramblock_sync_dirty_bitmap(w, rb)
            return
        yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
