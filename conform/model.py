"""Ask the model's own throttle code what it predicts, fed with what a real run observed.

The design's ``migration_trigger_throttle`` and ``mig_throttle_guest_down`` are called on a minimal
stand-in for the model's ``World`` (only the fields they read: ``mig``, ``config``,
``throttle_pct``, ``bytes_per_page``), so the prediction is the model's, never a second copy of
its formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from dirtyproof.impl.config import TARGET_PAGE_SIZE, Config
from dirtyproof.impl.designs import DESIGNS, Legacy, Periodic


_QEMU = Config()        # QEMU's defaults live in the model's Config, once


@dataclass(frozen=True)
class ThrottleSettings:
    """The migration parameters the throttle reads (``query-migrate-parameters``' names)."""

    auto_converge: bool = True
    throttle_trigger_threshold: int = _QEMU.throttle_trigger_threshold
    cpu_throttle_initial: int = _QEMU.cpu_throttle_initial
    cpu_throttle_increment: int = _QEMU.cpu_throttle_increment
    cpu_throttle_tailslow: bool = _QEMU.cpu_throttle_tailslow
    max_cpu_throttle: int = _QEMU.max_cpu_throttle

    @classmethod
    def from_query(cls, params: dict | None, auto_converge: bool) -> "ThrottleSettings":
        """From a ``query-migrate-parameters`` reply (QEMU's defaults for what it lacks)."""
        p = params or {}
        d = cls()
        return cls(auto_converge=auto_converge,
                   throttle_trigger_threshold=int(p.get("throttle-trigger-threshold", d.throttle_trigger_threshold)),
                   cpu_throttle_initial=int(p.get("cpu-throttle-initial", d.cpu_throttle_initial)),
                   cpu_throttle_increment=int(p.get("cpu-throttle-increment", d.cpu_throttle_increment)),
                   cpu_throttle_tailslow=bool(p.get("cpu-throttle-tailslow", d.cpu_throttle_tailslow)),
                   max_cpu_throttle=int(p.get("max-cpu-throttle", d.max_cpu_throttle)))

    def config(self) -> Config:
        """The model's ``Config`` with these settings."""
        return Config(auto_converge=self.auto_converge,
                      throttle_trigger_threshold=self.throttle_trigger_threshold,
                      cpu_throttle_initial=self.cpu_throttle_initial,
                      cpu_throttle_increment=self.cpu_throttle_increment,
                      cpu_throttle_tailslow=self.cpu_throttle_tailslow,
                      max_cpu_throttle=self.max_cpu_throttle)


def design_for(version: tuple[int, ...] | None):
    """The model's design for a QEMU version: the 5 s timer sync was merged in 9.2; 10.1 skips
    the last stage's remote clear (``qemu-10.1``) and 11.0 batches the slow path's (``qemu-11.0``)."""
    if version is None or version < (9, 2):
        return Legacy
    if version >= (11, 0):
        return DESIGNS["qemu-11.0"]
    if version >= (10, 1):
        return DESIGNS["qemu-10.1"]
    return Periodic


@dataclass(frozen=True)
class Prediction:
    """What the model does at the end of one dirty-rate period."""

    dirty_rate_high_cnt: int
    throttle_pct: int
    throttled: bool          # the model called mig_throttle_guest_down


def predict_period_end(design, config: Config, *, throttle_pct: int, dirty_rate_high_cnt: int,
                       num_dirty_pages_period: int, bytes_xfer_period: int) -> Prediction:
    """Run the design's ``migration_trigger_throttle`` once on a stand-in world."""
    calls = []
    d = design()
    mig = SimpleNamespace(bytes_transferred=bytes_xfer_period, bytes_xfer_prev=0,
                          num_dirty_pages_period=num_dirty_pages_period,
                          dirty_rate_high_cnt=dirty_rate_high_cnt)
    w = SimpleNamespace(mig=mig, config=config, throttle_pct=throttle_pct,
                        bytes_per_page=lambda: TARGET_PAGE_SIZE)
    inner = d.mig_throttle_guest_down

    def spy(world, dirty, threshold):
        calls.append((dirty, threshold))
        return inner(world, dirty, threshold)

    d.mig_throttle_guest_down = spy       # only to see whether it was called; the model decides
    d.migration_trigger_throttle(w)
    return Prediction(mig.dirty_rate_high_cnt, w.throttle_pct, bool(calls))


def throttle_ladder(design, config: Config, steps: int) -> list[int]:
    """The percentages the model's ``mig_throttle_guest_down`` sets on ``steps`` successive calls
    from an unthrottled guest (tailslow off: the dirty figures do not matter)."""
    d = design()
    w = SimpleNamespace(mig=SimpleNamespace(), config=config, throttle_pct=0,
                        bytes_per_page=lambda: TARGET_PAGE_SIZE)
    out = []
    for _ in range(steps):
        d.mig_throttle_guest_down(w, 1, 0)
        out.append(w.throttle_pct)
    return out
