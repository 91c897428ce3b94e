"""Mutants of the helper threads and the designs with extra bitmaps: timer, iterate-sync, background-v1."""
from __future__ import annotations

from dirtyproof.impl.designs.background_v1 import LEGACY_ITER, MODERN_ITER, BackgroundV1
from dirtyproof.impl.designs.base import Step
from dirtyproof.impl.designs.iterate_sync import IterateSync
from dirtyproof.impl.designs.periodic import CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS, Periodic
from dirtyproof.impl.steps import ITER_FOLD, ITERATE_DONE, TIMER_RETURN
from dirtyproof.impl.steps import Step as S


class TimerMutexBeforeBql(Periodic):
    """The periodic timer takes ``bitmap_mutex`` (to read the counters consistently) before the
    BQL, while the migration thread's exact sync holds the BQL and waits for the mutex: ABBA.
    Realistic: the timer racing the migration thread was the main review topic of the 9.2 series."""

    name = "timer-mutex-before-bql"
    summary = "mutant: periodic timer takes bitmap_mutex, then the BQL"

    def timer_loop(self, w) -> Step:
        """As the base, with ``bitmap_mutex`` taken before the BQL."""
        period = w.config.dirty_sync_timer_ms or CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS
        while self.timer_armed:
            yield from w.sleep_until(w.clock_ms + period)
            yield from w.acquire("bitmap_mutex")
            yield from w.acquire("BQL")
            w.release("bitmap_mutex")
            yield from self.cpu_throttle_dirty_sync_timer_tick(w)
            w.release("BQL")
            yield S(TIMER_RETURN)


class IterateSyncInMutex(IterateSync):
    """Syncs from inside ``ram_save_iterate``'s ``bitmap_mutex`` section, taking the BQL while
    holding the mutex. Realistic: the obvious place to put the reviewer's suggested sync, which
    inverts the BQL -> bitmap_mutex order."""

    name = "iterate-sync-in-mutex"
    summary = "mutant: iterate-sync takes the BQL while holding bitmap_mutex"

    def ram_save_iterate(self, w) -> Step:
        """Take ``bitmap_mutex`` first, then sync when due, then send."""
        mig, cfg = w.mig, w.config
        yield from w.acquire("bitmap_mutex")
        if (cfg.auto_converge and mig.dirty_sync_count > 1
                and w.clock_ms - mig.last_sync_end_ms >= cfg.iterate_sync_ms):
            yield from w.acquire("BQL")
            yield from self.migration_bitmap_sync_precopy(w, last_stage=False)
            w.release("BQL")
        sent = yield from self.ram_save_burst(w)
        w.release("bitmap_mutex")
        yield S(ITERATE_DONE, value=sent)


class ForgetIterFold(BackgroundV1):
    """A MODERN_ITER sync counts ``iter_bmap`` into ``iter_dirty_pages`` but never folds it into
    ``bmap``, then clears it. Realistic: the fold is the one line of the series that makes
    ``iter_bmap`` matter, and v1 reviewers asked where iter_bmap reaches bmap at all."""

    name = "forget-iter-fold"
    summary = "mutant: background-v1 without the iter_bmap -> bmap fold"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """The series' sync, with ``bmap`` put back as it was just before the fold (same step)."""
        gen = super().cpu_physical_memory_sync_dirty_bitmap(w, rb)
        if self.flavour != MODERN_ITER:
            return (yield from gen)
        prev = rb.bmap.words.copy()
        try:
            step = next(gen)
            while True:
                if step.kind == ITER_FOLD:
                    rb.bmap.words[:] = prev
                    step = S(ITER_FOLD, block=rb.index, text=f"{rb.idstr}: iter_bmap counted, fold forgotten")
                prev = rb.bmap.words.copy()
                yield step
                step = next(gen)
        except StopIteration as stop:
            return stop.value


class BgSyncTakesLegacyPath(BackgroundV1):
    """The background sync takes the LEGACY_ITER branch (``bmap |= bits``, counters updated), so it
    changes what the migration thread sends behind its back. Realistic: the flavour test
    ``sync_mode == LEGACY`` checked before the ``background`` argument, one branch of the v1 patch."""

    name = "bg-sync-takes-legacy-path"
    summary = "mutant: background-v1's background sync updates bmap like a legacy sync"

    def ramblock_sync_dirty_bitmap(self, w, rb) -> Step:
        """A background sync of a block runs the legacy body; others as the series."""
        if not self.background:
            return (yield from super().ramblock_sync_dirty_bitmap(w, rb))
        self.flavour = LEGACY_ITER
        n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        w.mig.migration_dirty_pages += n
        w.mig.num_dirty_pages_period += n
