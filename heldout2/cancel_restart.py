"""Held-out broken designs that carry state of a cancelled attempt into the restarted one.

HELD OUT: never tune a search on these (see README.md).
"""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy, Periodic


class LegacyRestartResumesOldBitmap(Legacy):
    """A restarted migration keeps the cancelled attempt's ``bmap`` and "resumes" from it.

    The mistake: an author who knows postcopy recovery (``ram_resume_prepare`` /
    ``ram_dirty_bitmap_reload``, migration/ram.c, Peter Xu 2018) wants a cancelled precopy that
    is started again to skip the pages it already sent: ``ram_list_init_bitmaps`` keeps an
    existing ``bmap`` and only recounts ``migration_dirty_pages`` from it. Postcopy recovery
    itself never trusts the old bitmap: it rebuilds it from the destination's received bitmap,
    because even a page sent to the *same* destination may not have arrived. After
    ``migrate_cancel`` the destination is a new process that holds nothing, and QEMU's
    ``ram_list_init_bitmaps`` always allocates ``bmap`` all ones (``ram_save_cleanup`` freed the old one).

    Why it loses a write: every page sent by the cancelled attempt and clean since is in no layer
    of the new attempt and is never sent to the new destination. Expected violated property:
    ``coverage`` right after the restart's setup (then ``no-loss``); the rule
    ``bmap-full-after-setup`` reports the same step.
    """

    name = "heldout2-restart-resumes-old-bitmap"
    summary = "after cancel and restart, ram_list_init_bitmaps keeps the old bmap (resume-style)"
    breaks = "coverage"
    # declared design state: whether bitmaps exist from an earlier attempt (never freed)
    bitmaps_allocated: bool = False

    def ram_list_init_bitmaps(self, w) -> None:
        """First attempt: QEMU's all-ones ``bmap``. Later attempts: keep ``bmap``, recount the counter."""
        if not self.bitmaps_allocated:
            super().ram_list_init_bitmaps(w)
            self.bitmaps_allocated = True
            return
        for rb in w.blocks:
            rb.clear_bmap.fill(False)
        w.mig.migration_dirty_pages = w.bmap_popcount()


class PeriodicRestartKeepsRateHistory(Periodic):
    """A restarted migration starts its first rate period from the cancelled attempt's last one.

    The mistake: so that auto-converge does not have to wait for two fresh high-rate periods
    before it throttles again, a patch seeds the new attempt's ``RAMState`` with the cancelled
    attempt's dirty-rate history: ``num_dirty_pages_period`` starts at the dirty pages of the last
    period the old attempt measured, and ``dirty_rate_high_cnt`` at its value. QEMU allocates a
    zeroed ``RAMState`` per attempt (``ram_state_init``, migration/ram.c), and
    ``migration_bitmap_sync`` only ever zeroes the period count together with moving
    ``time_last_bitmap_sync``, so the count is always what this period's syncs newly set in ``bmap``.

    Why it breaks: the new attempt's first period count includes pages that no sync of this
    period set in ``bmap`` (the old attempt's bitmaps are gone), so the throttle decides on a
    rate the bitmaps never had. Expected violated property: ``period-counter``, at the
    restart's setup.
    """

    name = "heldout2-restart-keeps-rate-history"
    summary = "after cancel and restart, the first period starts from the old attempt's last period count"
    breaks = "period-counter"
    # declared design state: the dirty pages of the last period measured, and the high-rate count
    last_period_pages: int = 0
    kept_high_cnt: int | None = None

    def new_period(self, w, now: int) -> None:
        """QEMU's period change, remembering the finished period's dirty pages first."""
        self.last_period_pages = w.mig.num_dirty_pages_period
        super().new_period(w, now)

    def ram_save_setup(self, w):
        """``ram_state_init`` seeded with the previous attempt's history, then ``ram_init_bitmaps``."""
        mig = w.mig
        mig.migration_dirty_pages = w.geometry.total_pages
        mig.time_last_bitmap_sync = w.clock_ms
        if self.kept_high_cnt is not None:
            mig.num_dirty_pages_period = self.last_period_pages
            mig.dirty_rate_high_cnt = self.kept_high_cnt
        yield from self.ram_init_bitmaps(w)

    def migration_cancel(self, w):
        """QEMU's cancel, remembering the high-rate count for the next attempt."""
        self.kept_high_cnt = w.mig.dirty_rate_high_cnt
        yield from super().migration_cancel(w)
