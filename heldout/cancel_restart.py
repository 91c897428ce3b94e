"""HELD OUT. Cancel and restart: state left over from the cancelled attempt. Never tune a search
on these designs; they exist to measure."""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy, Periodic
from dirtyproof.impl.designs.base import Step


class LegacyBitmapsKeptAcrossCancel(Legacy):
    """The cancel path does not free ``bmap``/``clear_bmap``, and ``ram_list_init_bitmaps`` only
    allocates (and fills) a block's bitmaps when they are not there yet.

    Scenario: attempt 1 sends some pages (their ``bmap`` bits cleared) and is cancelled. Attempt 2
    talks to a new, empty destination but finds the old bitmaps and keeps them; the pages attempt
    1 sent are never sent to the new destination unless written again. ``migration_dirty_pages``
    is recomputed from the kept bitmap, so the counter agrees with it.

    Modelled from ``migration/ram.c`` ``ram_list_init_bitmaps`` (``bitmap_new`` + ``bitmap_set`` of
    every page, a fresh ``clear_bmap``) and ``ram_save_cleanup`` (frees both): the variant guards the
    allocation with ``if (!block->bmap)``, as is common for re-entrant setup, while the cancel
    path skips the free (``docs/qemu-semantics.md`` section 8: a new migration must start from all ones).
    """

    name = "heldout-legacy-bitmaps-kept-across-cancel"
    summary = "held out: a restart after cancel keeps the cancelled attempt's bmap instead of all ones"
    breaks = "coverage"

    def attach(self, w) -> None:
        super().attach(w)
        self.allocated = False

    def ram_list_init_bitmaps(self, w) -> None:
        if self.allocated:
            return                              # "already allocated": old bits kept
        super().ram_list_init_bitmaps(w)
        self.allocated = True

    def ram_save_setup(self, w) -> Step:
        mig = w.mig
        # the counter is taken from what is kept, so it agrees with bmap
        mig.migration_dirty_pages = w.bmap_popcount() if self.allocated else w.geometry.total_pages
        mig.time_last_bitmap_sync = w.clock_ms
        yield from self.ram_init_bitmaps(w)

    def migration_iteration_finish(self, w) -> Step:
        yield from super().migration_iteration_finish(w)
        self.allocated = False                  # the completion path does free them


class PeriodicRAMStateReused(Periodic):
    """A restarted attempt reuses the cancelled attempt's RAMState: ``ram_state_init`` is skipped
    when the state pointer is still set, so ``migration_dirty_pages`` and the rate period start
    from the old attempt's values while ``bmap`` is set to all ones again.

    Scenario: attempt 1 runs, sends pages (the counter drops), and is cancelled; attempt 2 fills
    ``bmap`` with every page but keeps the old counter. The counter is below ``bmap``'s popcount
    from the first step of attempt 2, the pending estimate is wrong, and switchover comes early.

    Modelled from ``migration/ram.c`` ``ram_state_init`` (a zeroed RAMState with
    ``migration_dirty_pages = ram_bytes_total() >> TARGET_PAGE_BITS``) and ``ram_save_cleanup``
    (frees it); the leftover state mirrors the one Peter Xu fixed in the 9.2 timer at merge time
    ("make prev_cnt global, and reset for each migration", 52ac968ab28b).
    """

    name = "heldout-periodic-ramstate-reused"
    summary = "held out: restart after cancel keeps the old RAMState counters with a fresh all-ones bmap"
    breaks = "dirty-pages-count"

    def attach(self, w) -> None:
        super().attach(w)
        self.old_rs = None

    def ram_save_setup(self, w) -> Step:
        mig = w.mig
        if self.old_rs is None:
            mig.migration_dirty_pages = w.geometry.total_pages
            mig.time_last_bitmap_sync = w.clock_ms
        else:                                   # ram_state_init skipped: old RAMState kept
            (mig.migration_dirty_pages, mig.time_last_bitmap_sync, mig.num_dirty_pages_period,
             mig.bytes_xfer_prev, mig.dirty_rate_high_cnt) = self.old_rs
        yield from self.ram_init_bitmaps(w)

    def migration_cancel(self, w) -> Step:
        mig = w.mig
        self.old_rs = (mig.migration_dirty_pages, mig.time_last_bitmap_sync, mig.num_dirty_pages_period,
                       mig.bytes_xfer_prev, mig.dirty_rate_high_cnt)
        yield from super().migration_cancel(w)


class LegacyDirtyLogFlagLeftOver(Legacy):
    """The cancel path stops KVM dirty logging but leaves the migration's global-dirty-tracking
    flag set, so the restarted attempt's ``memory_global_dirty_log_start`` sees it on and starts
    nothing.

    Scenario: attempt 1 is cancelled (logging stopped, flag still set). Attempt 2 fills ``bmap``
    and sends every page once, but KVM no longer logs: a guest write to a page after its send
    faults nowhere, and the page is never sent again.

    Modelled from ``system/memory.c`` ``memory_global_dirty_log_start``/``_stop`` (the
    ``global_dirty_tracking`` bitmask, GLOBAL_DIRTY_MIGRATION; the listeners' ``log_global_start``
    runs only when tracking goes from off to on) and ``migration/ram.c`` ``ram_init_bitmaps`` /
    ``ram_save_cleanup``; the variant's cancel path calls the KVM stop directly and forgets the bit.
    The separate bookkeeping of the migration's dirty-logging state "has caused several bugs"
    (6f6a5ef3e429, "memory: include DIRTY_MEMORY_MIGRATION in the dirty log mask", Paolo Bonzini,
    which also names KVM tracking dirty pages after a failed migration).
    """

    name = "heldout-legacy-dirty-log-flag-left-over"
    summary = "held out: cancel leaves the dirty-tracking flag set; the restart never restarts KVM logging"
    breaks = "coverage"

    def attach(self, w) -> None:
        super().attach(w)
        self.global_dirty_tracking = False

    def ram_init_bitmaps(self, w) -> Step:
        self.ram_list_init_bitmaps(w)
        if not self.global_dirty_tracking:
            w.kvm.log_start()
            self.global_dirty_tracking = True
        yield "ram_init_bitmaps: bmap all set, clear_bmap clear, dirty logging started (if off)"
        yield from self.migration_bitmap_sync_precopy(w, last_stage=False)

    def migration_iteration_finish(self, w) -> Step:
        yield from super().migration_iteration_finish(w)
        self.global_dirty_tracking = False
