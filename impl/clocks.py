"""QEMU's clock types, as the model's logical clock shows them.

The world has one logical clock, ``World.clock_ms``: QEMU_CLOCK_REALTIME (the host's time, which
migration's rate periods and the watcher read). QEMU_CLOCK_VIRTUAL and QEMU_CLOCK_VIRTUAL_RT are
derived from it: outside icount mode both are ``cpu_get_clock()``, which stands still while the
VM is stopped (``cpu_disable_ticks`` in ``do_vm_stop``, ``cpu_enable_ticks`` in ``vm_start``;
``include/qemu/timer.h``, ``system/cpu-timers.c``). A timer armed on them therefore cannot expire
while the VM is stopped: the periodic dirty-sync timer (``migration/cpu-throttle.c``) is armed on
QEMU_CLOCK_VIRTUAL_RT, so after ``vm_stop`` in ``migration_completion`` it no longer fires.

One case is left as QEMU has it: a timer whose deadline passed *before* the stop and whose
callback is waiting for the BQL (the main loop runs expired timers after it gets the BQL back)
still runs once: the clock is enabled, the deadline is behind it. ``qemu_clock_run_all_timers``
skips only disabled clocks, and VIRTUAL_RT is never disabled by ``pause_all_vcpus`` (only
QEMU_CLOCK_VIRTUAL is).
"""
from __future__ import annotations

QEMU_CLOCK_REALTIME = "realtime"
QEMU_CLOCK_VIRTUAL = "virtual"
QEMU_CLOCK_VIRTUAL_RT = "virtual_rt"
CLOCKS = (QEMU_CLOCK_REALTIME, QEMU_CLOCK_VIRTUAL, QEMU_CLOCK_VIRTUAL_RT)


class VMClock:
    """The stopped time of the VM, from which the virtual clocks are derived from the realtime one.

    ``stopped_at`` is the realtime ms of the last ``vm_stop`` (``None`` while the VM runs);
    ``paused_ms`` sums the realtime ms of every earlier stop. Both are written only by the world's
    ``vm_stop``/``vm_start``."""

    __slots__ = ("stopped_at", "paused_ms")

    def __init__(self) -> None:
        self.stopped_at: int | None = None
        self.paused_ms = 0

    def get_ms(self, clock: str, realtime_ms: int) -> int:
        """The value of ``clock`` when the realtime clock reads ``realtime_ms``."""
        if clock == QEMU_CLOCK_REALTIME:
            return realtime_ms
        if clock not in CLOCKS:
            raise ValueError(f"unknown QEMU clock type {clock!r} (one of {', '.join(CLOCKS)})")
        now = realtime_ms if self.stopped_at is None else self.stopped_at
        return now - self.paused_ms

    def stop(self, realtime_ms: int) -> None:
        """``cpu_disable_ticks``: the virtual clocks stand still from ``realtime_ms`` on."""
        if self.stopped_at is None:
            self.stopped_at = realtime_ms

    def start(self, realtime_ms: int) -> None:
        """``cpu_enable_ticks``: the virtual clocks run again, the stopped time left out."""
        if self.stopped_at is not None:
            self.paused_ms += realtime_ms - self.stopped_at
            self.stopped_at = None
