"""A reviewer's alternative: sync from ``ram_save_iterate`` every few seconds, in the migration thread."""
from __future__ import annotations

from .base import Design, Step


class IterateSync(Design):
    """Peter Xu's suggestion on the seed thread: no new thread, no new bitmap; the migration
    thread itself syncs (taking the BQL, before ``bitmap_mutex``) when auto-converge is on and
    the last sync is older than ``iterate_sync_ms``."""

    name = "iterate-sync"
    summary = "reviewer's alternative: ram_save_iterate syncs every few seconds (auto-converge only)"

    def ram_save_iterate(self, w) -> Step:
        """Sync first when due (BQL then the ordinary sync), then send a burst as usual."""
        mig, cfg = w.mig, w.config
        if (cfg.auto_converge and mig.dirty_sync_count > 1
                and w.clock_ms - mig.last_sync_end_ms >= cfg.iterate_sync_ms):
            yield from w.acquire("BQL")
            yield from self.migration_bitmap_sync_precopy(w, last_stage=False)
            w.release("BQL")
        yield from super().ram_save_iterate(w)
