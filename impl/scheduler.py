"""Schedules: a seeded random scheduler and the lifecycle steps it owes.

A schedule is a list of choices ``[actor, arg]`` (see :meth:`World.step`). Applying one and
checking the spec after every step is :func:`dirtyproof.checked.run`: the model does not import
the checks.
"""
from __future__ import annotations

import random

from .world import NOVCPU, BadChoice, ModelError, World

CLOCK_STEPS_MS = (10, 100, 500, 1000, 2500)
# Weight of the guest reporting a free page (free-page hinting worlds), beside a vCPU write's 2.0.
HINT_WEIGHT = 1.0
# Weight of a write KVM makes without a vCPU (dirty ring with the backup bitmap), as a device's.
NOVCPU_WEIGHT = 0.4


NO_LIFECYCLE_STEP = object()


def lifecycle_choice(w: World, free_run: bool):
    """The management step a scheduler owes now, ``None`` when the run is over, or
    ``NO_LIFECYCLE_STEP``: start (or restart after a cancel) a migration, and switch over once the
    free-running part of the schedule is spent."""
    mig = w.mig
    if mig is None:
        return ["mgmt", "start"]
    if not w.migration_active():
        return ["mgmt", "start"] if mig.phase == "cancelled" else None
    if not free_run and not mig.downtime_raised and mig.phase in ("setup", "active"):
        return ["mgmt", "switchover"]
    return NO_LIFECYCLE_STEP


class DesignCrash(RuntimeError):
    """Design code raised an exception while taking a step (it breaks the design interface)."""


class RandomScheduler:
    """Picks enabled choices with weights from a seeded RNG.

    For ``steps`` steps the guest, the devices, the clock and every thread interleave freely
    (with at most ``cancels`` cancel-and-restart); then the downtime limit is raised so the
    migration switches over, and the run goes on until it completes. Writes go half of the time
    to a small hot set of pages, so pages are rewritten while they are in flight."""

    def __init__(self, seed: int, steps: int, cancels: int = 1, hot_pages: int = 4):
        self.rng = random.Random(seed)
        self.steps = steps
        self.cancels_left = cancels
        self.hot_pages = hot_pages
        self.hot: list[int] | None = None
        self.n = 0

    def _page(self, w: World) -> int:
        rng = self.rng
        if self.hot is None:
            pages = w.guest_pages or list(range(w.ram_pages))
            self.hot = rng.sample(pages, min(self.hot_pages, len(pages)))
        if rng.random() < 0.5:
            return rng.choice(self.hot)
        rb = rng.choice(w.blocks)
        return rb.offset + rng.randrange(rb.pages)

    def next_choice(self, w: World):
        """The next choice for ``w``, or ``None`` when the migration is over."""
        rng = self.rng
        self.n += 1
        free_run = self.n <= self.steps
        lifecycle = lifecycle_choice(w, free_run)
        if lifecycle is not NO_LIFECYCLE_STEP:
            return lifecycle
        # Weighted options, summed in this order (the float sum and the RNG draws below fix
        # which choice a seed makes, so traces and seeds stay reproducible).
        names: list[str] = []
        weights: list[float] = []
        runnable = self.threads_to_draw(w, free_run)
        for name in runnable:
            names.append(name)
            weights.append(3.0 if name != "migration" or free_run else 8.0)
        if w.vm_running:
            names.append(f"vcpu{rng.randrange(w.config.vcpus)}")
            weights.append(2.0 * (100 - w.throttle_pct) / 100)
            names.append("device")
            weights.append(0.4)
            if w.balloon is not None:     # only in hinting worlds: other seeds' choices stay as they were
                names.append("guest-hint")
                weights.append(HINT_WEIGHT)
            if w.kvm.with_bitmap:         # dirty ring with the backup bitmap only, likewise
                names.append(NOVCPU)
                weights.append(NOVCPU_WEIGHT)
        names.append("clock")
        weights.append(0.6 if free_run else 0.2)
        if free_run and self.cancels_left and w.can_cancel() and rng.random() < 0.002:
            self.cancels_left -= 1
            return ["mgmt", "cancel"]
        total = 0
        for wt in weights:
            total += wt
        r = rng.random() * total
        for name, wt in zip(names, weights):
            r -= wt
            if r <= 0:
                break
        if name in ("device", "guest-hint", NOVCPU) or name.startswith("vcpu"):
            return [name, self._page(w)]
        if name == "clock":
            if not runnable:
                wake = w.next_wakeup()
                if wake is not None:
                    return ["clock", wake - w.clock_ms]
            return ["clock", rng.choice(CLOCK_STEPS_MS)]
        self.thread_drawn(w, name, free_run)
        return [name, None]

    def threads_to_draw(self, w: World, free_run: bool) -> list[str]:
        """The threads this step's draw is among: every runnable one (a subclass may hold some
        back; it must draw nothing from :attr:`rng` here, so plain seeds keep their meaning)."""
        return w.runnable_threads()

    def thread_drawn(self, w: World, name: str, free_run: bool) -> None:
        """Called when thread ``name`` was drawn to step next (nothing here; a subclass may note it,
        drawing nothing from :attr:`rng`)."""


__all__ = ["RandomScheduler", "BadChoice", "DesignCrash", "lifecycle_choice"]
