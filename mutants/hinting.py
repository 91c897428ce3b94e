"""Mutants for free-page hinting (``Config.free_page_hinting``): broken only for a hinting guest.

Their expectations are the manifest's ``hinting`` section, hunted with the flag on."""
from __future__ import annotations

from dirtyproof.impl.designs.base import Step
from dirtyproof.impl.designs.periodic import Periodic


class TimerSyncSkipsNotifiers(Periodic):
    """The periodic timer's sync calls ``migration_bitmap_sync`` directly instead of
    ``migration_bitmap_sync_precopy``, so the precopy notifiers do not run around it: free-page
    hinting is not stopped before that sync. A hint the guest queued before reusing the page is
    then applied after the sync fetched the reuse, and clears the page's only mark. Realistic:
    QEMU 9.2's timer sync could have called the inner function (it runs outside the migration
    thread); it calls ``migration_bitmap_sync_precopy`` (migration/cpu-throttle.c)."""

    name = "timer-sync-skips-notifiers"
    summary = "mutant: the periodic timer syncs without the precopy notifiers (hinting not stopped)"

    def cpu_throttle_dirty_sync_timer_tick(self, w) -> Step:
        """As the base, with the inner sync in place of ``migration_bitmap_sync_precopy``."""
        sync_cnt = w.mig.dirty_sync_count
        if sync_cnt > 1 and sync_cnt == self.throttle_dirty_sync_count_prev:
            yield from self.migration_bitmap_sync(w, last_stage=False)
        self.throttle_dirty_sync_count_prev = w.mig.dirty_sync_count
