"""QEMU 10.1: the periodic design plus the last stage without remote clears and the reworked
completion check.

Modelled from the qemu-devel archive (the commits as pulled; QEMU's code is not copied):

- ``fd0377150d5d`` "migration/ram: avoid to do log clear in the last round" (Yanfei Xu, pulled
  23 Jun 2025): ``migration_bitmap_clear_dirty`` (migration/ram.c) calls
  ``migration_clear_memory_region_dirty_bitmap`` only while ``!rs->last_stage``;
  ``ram_save_complete`` sets ``rs->last_stage`` before the last-stage sync. With the source VM
  stopped no write can follow a page's read, and if the migration fails then tracking is not
  needed either.
- ``adb13d6e42d6`` "migration/postcopy: Avoid clearing dirty bitmap for postcopy too" (Peter Xu,
  pulled 11 Jul 2025): the same skip while ``migration_in_postcopy()``. **Postcopy is not
  modelled**, so this half of the condition is always false here.
- ``7aaa1fc072ca`` "migration: Rewrite the migration complete detect logic" (same pull,
  migration/migration.c ``migration_iteration_run``): in precopy the exact query runs when the
  estimate is strictly below the threshold, and the migration completes when the exact pending
  size is at most the threshold (before: "zero, or strictly below").

Everything else is :class:`Periodic` (QEMU 9.2's 5 s dirty-sync timer, migration/cpu-throttle.c).
"""
from __future__ import annotations

from ..steps import BMAP_TAKE
from ..steps import Step as S
from .base import Step
from .periodic import Periodic


class Qemu101(Periodic):
    """QEMU 10.1 (precopy): periodic, no owed chunk clear in the last stage (fd0377150d5d; the
    postcopy half, adb13d6e42d6, is not modelled), completion checked as 7aaa1fc072ca does.

    ``last_stage`` is ``RAMState::last_stage``: false from ``ram_state_init`` (each attempt gets a
    zeroed RAMState), true from the start of ``ram_save_complete``."""

    name = "qemu-10.1"
    summary = "QEMU 10.1: periodic + no chunk clear in the last stage (fd0377150d5d), completion rework"
    # RAMState::last_stage (declared design state)
    last_stage: bool = False

    def attach(self, w) -> None:
        """Bind to the world; no RAMState yet, so no last stage."""
        super().attach(w)
        self.last_stage = False

    def ram_save_setup(self, w) -> Step:
        """``ram_state_init`` allocates a zeroed RAMState: ``last_stage`` is false again."""
        self.last_stage = False
        yield from super().ram_save_setup(w)

    def ram_save_complete(self, w) -> Step:
        """``rs->last_stage = true`` (QEMU: unless COLO, not modelled), then the last-stage sync and
        the drain as before."""
        self.last_stage = True
        yield from super().ram_save_complete(w)

    def migration_bitmap_clear_dirty(self, w, rb, page: int) -> Step:
        """The owed chunk clear only while not in the last stage (fd0377150d5d), then the ``bmap``
        test-and-clear and the ``migration_dirty_pages`` decrement (one step), as before."""
        if not self.last_stage:
            yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        return ret

    def migration_iteration_run(self, w) -> Step:
        """``migration_iteration_run`` after 7aaa1fc072ca (precopy): the exact query when the
        estimate is strictly below the threshold; complete when the exact pending size is at most
        the threshold (a raised downtime limit, the model's switchover, always completes)."""
        mig, thr = w.mig, w.config.switchover_pages
        if mig.downtime_raised or mig.migration_dirty_pages < thr:
            yield from w.acquire("BQL")
            yield from self.ram_state_pending_exact(w)
            w.release("BQL")
            if mig.downtime_raised or mig.migration_dirty_pages <= thr:
                return True
        yield from self.ram_save_iterate(w)
        return False
