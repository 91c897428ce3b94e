"""User-style designs of cancel and restart."""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy
from dirtyproof.impl.designs.base import Step


class StaleCleanupAfterRestart(Legacy):
    """A cancel schedules part of its cleanup (the ``ram_save_cleanup`` that stops dirty logging)
    as a main-loop bottom half, and reports the migration cancelled before that bottom half ran;
    a new migration can start first, and the stale cleanup then stops the new attempt's logging.

    Modelled on ``migrate_fd_cleanup_schedule`` / ``migrate_fd_cleanup_bh`` and
    ``ram_save_cleanup`` (migration/migration.c, migration/ram.c): QEMU sets the state to
    CANCELLED only at the end of ``migrate_fd_cleanup``, and ``qmp_migrate`` refuses to start
    while ``migration_is_running()`` (which includes CANCELLING), so the cleanup can never overtake
    a restart. The bug is the state change moved ahead of the bottom half; the cleanup's
    ``memory_global_dirty_log_stop(GLOBAL_DIRTY_MIGRATION)`` then hits the new attempt's flag.
    Layer: cancel and restart.

    The bottom half runs at the main loop's next iteration (modelled as 1 ms later), by which
    time a ``migrate`` command may have been handled.

    Scenario: cancel; the management restarts at once; the new attempt starts dirty logging and
    sends page P; the stale bottom half takes the BQL and stops dirty logging; the guest writes P,
    which nothing logs (KVM is not logging, so no fault, no L1 bit); no sync ever sees it:
    ``no-loss`` fails at completion."""

    name = "user-stale-cleanup-after-restart"
    summary = "broken: cancel's dirty-log stop runs as a bottom half that can run after a restart"
    expected = "unsafe"
    layer = "cancel and restart"
    breaks = "no-loss"

    def migration_cancel(self, w) -> Step:
        """The base cancel, plus the deferred ``ram_save_cleanup`` bottom half."""
        w.spawn(f"cleanup_bh{w.mig.attempt}", self.migrate_fd_cleanup_bh(w))
        yield from super().migration_cancel(w)

    def migrate_fd_cleanup_bh(self, w) -> Step:
        """The bottom half: under the BQL, stop dirty logging (whoever turned it on)."""
        yield from w.sleep_until(w.clock_ms + 1)      # the main loop's next iteration
        yield from w.acquire("BQL")
        w.kvm.log_stop()
        w.release("BQL")
        yield "cleanup bottom half: memory_global_dirty_log_stop"
