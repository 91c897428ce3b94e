"""The timer-driven periodic sync merged in QEMU 9.2 (``migration/cpu-throttle.c``)."""
from __future__ import annotations

from ..clocks import QEMU_CLOCK_VIRTUAL_RT
from ..steps import TIMER_RETURN
from ..steps import Step as S
from .base import Design, Step

CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS = 5000


class Periodic(Design):
    """With auto-converge on, a main-loop timer syncs every 5 s while the sync count is stuck.

    The timer is armed by the migration thread before setup; arming resets the remembered count
    to 0, so the first tick never syncs. The callback runs in the main loop with the BQL held."""

    name = "periodic"
    summary = "QEMU 9.2-10.0: a 5 s main-loop timer syncs when dirty_sync_count has not moved"
    regions = ("timer_loop", "cpu_throttle_dirty_sync_timer_tick")

    def attach(self, w) -> None:
        """Bind to the world; no timer is armed yet."""
        super().attach(w)
        self.throttle_dirty_sync_count_prev = 0
        self.timer_armed = False

    def before_setup(self, w) -> None:
        """``cpu_throttle_dirty_sync_timer(true)`` in the migration thread, when auto-converge is on."""
        if w.config.auto_converge:
            self.throttle_dirty_sync_count_prev = 0
            self.timer_armed = True
            w.spawn("timer", self.timer_loop(w))

    def stop_threads(self, w) -> None:
        """``cpu_throttle_stop`` -> ``cpu_throttle_dirty_sync_timer(false)``: ``timer_del`` under
        the BQL, so the timer never fires again (a callback waiting for the BQL is not run)."""
        self.timer_armed = False
        t = w.actors.get("timer")
        if t is not None and not t.held:      # a callback holding a lock is not a main-loop timer's
            w.timer_del("timer")

    def timer_loop(self, w) -> Step:
        """The main loop firing the timer every 5 s of ``QEMU_CLOCK_VIRTUAL_RT``: the deadline is
        on that clock, which stands still while the VM is stopped (impl/clocks.py)."""
        period = w.config.dirty_sync_timer_ms or CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS
        while self.timer_armed:
            yield from w.sleep_until(w.clock_get_ms(QEMU_CLOCK_VIRTUAL_RT) + period, clock=QEMU_CLOCK_VIRTUAL_RT)
            yield from w.acquire("BQL")
            yield from self.cpu_throttle_dirty_sync_timer_tick(w)
            w.release("BQL")
            yield S(TIMER_RETURN)

    def cpu_throttle_dirty_sync_timer_tick(self, w) -> Step:
        """``cpu_throttle_dirty_sync_timer_tick``: sync if past the first iteration and the count
        has not moved since the previous tick; then remember the count (read after the sync)."""
        sync_cnt = w.mig.dirty_sync_count
        if sync_cnt > 1 and sync_cnt == self.throttle_dirty_sync_count_prev:
            yield from self.migration_bitmap_sync_precopy(w, last_stage=False)
        self.throttle_dirty_sync_count_prev = w.mig.dirty_sync_count
