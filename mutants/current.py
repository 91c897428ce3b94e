"""Mutants of the current-QEMU designs (qemu-10.1, qemu-11.0): each one slip away from a change
QEMU made in 10.1 or 11.0, written from the patch mails and their review (not QEMU's code)."""
from __future__ import annotations

from dirtyproof.impl.designs.base import Step
from dirtyproof.impl.designs.qemu_10_1 import Qemu101
from dirtyproof.impl.designs.qemu_11_0 import Qemu110
from dirtyproof.impl.steps import BMAP_TAKE, L2_TEST_AND_CLEAR
from dirtyproof.impl.steps import Step as S


class LastStageSkipsBmapTake(Qemu101):
    """fd0377150d5d with the ``if (!rs->last_stage)`` block closed one statement too late: in the
    last stage ``migration_bitmap_clear_dirty`` skips the ``bmap`` test-and-clear with the remote
    clear, returns false, and ``ram_save_complete``'s loop takes that for "nothing left": the
    stopped VM's last dirty pages are never sent (no-loss at completion)."""

    name = "last-stage-skips-bmap-take"
    summary = "mutant of qemu-10.1: the last-stage skip also skips the bmap take, so the drain sends nothing"

    def migration_bitmap_clear_dirty(self, w, rb, page: int) -> Step:
        """Clear, take and count only outside the last stage; in it, report the page clean."""
        ret = False
        if not self.last_stage:
            yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
            ret = rb.bmap.test_and_clear(page)
            if ret:
                w.mig.migration_dirty_pages -= 1
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        return ret


class LastStageSetAtExactSync(Qemu101):
    """fd0377150d5d with ``rs->last_stage = true`` one function early, in the exact pending query
    (read as "there won't be any ram sync after this one"): when the exact query finds too much
    left, the iterations go on with the VM running and every owed chunk clear skipped.

    No write is lost (a skipped CLEAR leaves the page's L1 bit set, so the next GET reports the
    page again; in QEMU it costs re-protection and convergence), but QEMU's rule clear-before-read
    breaks while the VM runs: the rule is evaluated where it matters, unlike qemu-10.1's skip."""

    name = "last-stage-set-at-exact-sync"
    summary = "mutant of qemu-10.1: last_stage set by the exact pending query, so clears are skipped while the VM runs"

    def ram_state_pending_exact(self, w) -> Step:
        """Set ``last_stage``, then the exact sync as before."""
        self.last_stage = True
        yield from super().ram_state_pending_exact(w)


class BatchedSlowCountsRaw(Qemu110):
    """e8a6d158dbfa with the count placed as the patch's first docstring read ("count those pages")
    rather than as the code does (Fabiano Rosas' review of v3): the batched slow path counts
    every page whose L2 bit was set, also those already in ``bmap``, so ``migration_dirty_pages``
    grows past the popcount of ``bmap`` (the ``!bmap`` branch's count used for the bmap case)."""

    name = "batched-slow-counts-raw"
    summary = "mutant of qemu-11.0: the batched slow path counts dirty L2 pages already in bmap"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """qemu-11.0's slow path with ``num_dirty++`` for every dirty L2 bit."""
        if rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        for k in range(rb.pages):
            page = rb.offset + k
            if not w.L2.test(page):
                continue
            w.L2.test_and_clear(page)
            rb.bmap.test_and_set(k)
            num_dirty += 1
            yield S(L2_TEST_AND_CLEAR, block=rb.index, page=page, value=True, into="bmap")
        yield from self.memory_region_clear_dirty_bitmap(w, rb.offset, rb.offset + rb.pages)
        return num_dirty
