"""Mutants of the lifecycle: the cleanup's order against the threads and the freed state."""
from __future__ import annotations

from dirtyproof.impl.designs.background_v1 import BackgroundV1
from dirtyproof.impl.designs.legacy import Legacy
from dirtyproof.impl.designs.periodic import Periodic


class RemainingAfterCleanup(Legacy):
    """The cleanup reads ``migration_dirty_pages`` (``ram_bytes_remaining()``, for the last
    statistics of the migration) after ``qemu_savevm_state_cleanup`` freed the RAMState.
    Realistic: ``ram_bytes_remaining`` guards with ``ram_state ? ... : 0`` because ``info migrate``
    and the final event can come after the cleanup; dropping the guard, or moving the statistics
    below the cleanup, is a use after free (a NULL dereference in QEMU)."""

    name = "remaining-after-cleanup"
    summary = "mutant: the cleanup reads RAMState (ram_bytes_remaining) after freeing it"

    def qemu_savevm_state_cleanup(self, w) -> None:
        """The base cleanup, then the remaining bytes for the final statistics."""
        super().qemu_savevm_state_cleanup(w)
        self.final_remaining = w.mig.migration_dirty_pages * w.bytes_per_page()


class TimerFlagNotDeleted(Periodic):
    """``cpu_throttle_dirty_sync_timer(false)`` only clears a flag the callback looks at before it
    re-arms, instead of ``timer_del``. Realistic: the obvious way to stop a self-re-arming timer;
    but the timer is armed on QEMU_CLOCK_VIRTUAL_RT, which stands still once the VM is stopped,
    so after a completed migration the pending timer never fires to see the flag: it outlives the
    attempt (and would fire into the next one if the VM ran again)."""

    name = "timer-flag-not-deleted"
    summary = "mutant: periodic's timer stopped by a flag instead of timer_del"

    def stop_threads(self, w) -> None:
        """Clear the flag only; the timer stays armed until its callback runs."""
        self.timer_armed = False


class WatcherLeftOnCancel(BackgroundV1):
    """The v1 series' cancel path as its patches have it: the migration thread leaves its loop
    without ``migration_background_sync_cleanup`` (the series calls it only before
    ``migration_completion``), and the call in ``migrate_fd_cleanup`` comes after
    ``qemu_savevm_state_cleanup`` set ``ram_state = NULL``, so it returns at its ``if (!rs)``
    without posting the quit semaphore or joining. The watcher sleeps on, and either syncs on the
    freed RAMState or outlives the attempt. (The shipped ``background-v1`` joins the watcher on
    cancel too: docs/qemu-semantics.md section 12.)"""

    name = "watcher-left-on-cancel"
    summary = "mutant: background-v1's cancel does not stop the watcher (ram_state already NULL)"

    def migration_cancel(self, w):
        """The base cancel (Design's), without the watcher's quit and join."""
        yield from Legacy.migration_cancel(self, w)

    def stop_threads(self, w) -> None:
        """On the cancel path nothing: the only quit left is ``migration_background_sync_cleanup``
        in the cleanup, which finds no RAMState. Before completion, the series' own call."""
        if not w.mig.cancel_requested:
            super().stop_threads(w)
