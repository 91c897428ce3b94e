"""HELD OUT (third set): cancel, restart and the cleanup (migration/migration.c
``migration_iteration_finish``, ``migrate_fd_cleanup``; migration/ram.c ``ram_init_bitmaps``,
``ram_save_cleanup``; system/memory.c ``memory_global_dirty_log_start/stop``).
HELD OUT: never tune a search on these (README.md).
"""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy, Periodic
from dirtyproof.impl.steps import INIT_BITMAPS
from dirtyproof.impl.steps import Step as S


class PeriodicTimerStoppedByFlag(Periodic):
    """The dirty-sync timer is stopped by clearing a flag it reads, not by ``timer_del``.

    Mistake: ``cpu_throttle_dirty_sync_timer(false)`` only marks the timer disarmed, trusting the
    callback loop to see the flag. QEMU (migration/cpu-throttle.c, 52ac968ab28b; Peter Xu's fixup
    in the same commit makes the remembered count global and resets it per migration) calls
    ``timer_del`` under the BQL: the callback never runs again. Here the timer's pending firing
    still happens: its tick (BQL held) runs after the cleanup freed the RAMState, or the timer
    outlives its attempt and a restarted migration arms a second one beside it. Scenario: any
    migration that completes or is cancelled while the timer sleeps (its deadline on
    ``QEMU_CLOCK_VIRTUAL_RT`` passes later)."""

    name = "h3-timer-stopped-by-flag"
    summary = "periodic: cpu_throttle_stop clears the timer's armed flag instead of deleting the timer"
    breaks = "thread-lifetime"

    def stop_threads(self, w) -> None:
        """Only the flag: the timer is not deleted."""
        self.timer_armed = False


class LegacyRestartSkipsLogStart(Legacy):
    """A restarted migration does not start dirty logging again, believing it still on.

    Mistake: the design remembers that it started dirty logging and, on the next attempt's
    ``ram_init_bitmaps``, skips ``memory_global_dirty_log_start`` when it did so before, reasoning
    that the cleanup's stop is postponed (``memory_global_dirty_log_stop`` defers while the VM is
    stopped, system/memory.c). QEMU: every attempt's ``ram_init_bitmaps`` starts logging
    (``memory_global_dirty_log_start(GLOBAL_DIRTY_MIGRATION)``), whatever the last attempt did. Scenario: an attempt is cancelled while the VM runs (the cleanup stops
    logging at once), the migration is started again: no write is logged in the new attempt, and
    a page written after its first send never reaches the destination."""

    name = "h3-restart-skips-log-start"
    summary = "legacy: a restarted migration skips memory_global_dirty_log_start"
    breaks = "no-loss"

    def attach(self, w) -> None:
        """Bind to the world; logging never started yet."""
        super().attach(w)
        self.log_started_once = False

    def ram_init_bitmaps(self, w):
        """Bitmaps, logging only on the first attempt, the first sync."""
        self.ram_list_init_bitmaps(w)
        if not self.log_started_once:
            w.kvm.log_start()
            self.log_started_once = True
        yield S(INIT_BITMAPS)
        yield from self.migration_bitmap_sync_precopy(w, last_stage=False)
