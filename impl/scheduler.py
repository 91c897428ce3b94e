"""Schedules: a seeded random scheduler, and the runner that applies choices and checks invariants.

A schedule is a list of choices ``[actor, arg]`` (see :meth:`World.step`). The runner applies
them one at a time, checks the invariants after every step, and stops at the first violation.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .world import BadChoice, ModelError, World

CLOCK_STEPS_MS = (10, 100, 500, 1000, 2500)
# Weight of the guest reporting a free page (free-page hinting worlds), beside a vCPU write's 2.0.
HINT_WEIGHT = 1.0


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
        runnable = w.runnable_threads()
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
        if name in ("device", "guest-hint") or name.startswith("vcpu"):
            return [name, self._page(w)]
        if name == "clock":
            if not runnable:
                wake = w.next_wakeup()
                if wake is not None:
                    return ["clock", wake - w.clock_ms]
            return ["clock", rng.choice(CLOCK_STEPS_MS)]
        return [name, None]


@dataclass
class StepRecord:
    """One applied step: its index, the choice, and what it did."""

    index: int
    choice: list
    label: str


@dataclass
class RunResult:
    """The outcome of a run: the choices applied, counters, the first property violation if any,
    the rule violations seen on the way, and (after a coverage violation) the lost write that
    driving the run on to completion shows."""

    design: str
    choices: list = field(default_factory=list)
    log: list[StepRecord] = field(default_factory=list)
    violation: object = None
    violation_step: int | None = None
    checked: tuple = ()
    completed: bool = False
    syncs: int = 0
    pages_sent: int = 0
    rule_violations: list = field(default_factory=list)
    extension: list | None = None       # choices that drove the run on after a coverage violation
    lost_write: object = None           # the no-loss violation the extension showed, or None

    @property
    def steps(self) -> int:
        """Number of steps applied."""
        return len(self.choices)

    @property
    def ok(self) -> bool:
        """Whether no invariant was violated."""
        return self.violation is None


def extend_to_completion(w: World, limit: int = 20000):
    """Drive ``w`` on after a coverage violation, with no more guest or device writes: switch
    over, then the migration thread first, other threads next, else the clock to the next
    wake-up, until the attempt ends. Returns ``(choices, lost)``: ``lost`` is the ``no-loss``
    violation at completion (the lost write, with source and destination versions), or ``None``
    when none shows (the attempt did not complete, or the page was sent after all)."""
    from dirtyproof.spec.invariants import check_no_loss

    out: list = []

    def take(choice) -> bool:
        out.append(choice)
        try:
            w.step(choice)
        except (ModelError, BadChoice):
            return False
        return True

    if w.migration_active() and not w.mig.downtime_raised and w.mig.phase in ("setup", "active"):
        if not take(["mgmt", "switchover"]):
            return out, None
    while w.migration_active() and len(out) < limit:
        threads = w.runnable_threads()
        if threads:
            ok = take(["migration" if "migration" in threads else threads[0], None])
        else:
            wake = w.next_wakeup()
            if wake is None:
                break
            ok = take(["clock", wake - w.clock_ms])
        if not ok:
            break
    return out, (check_no_loss(w) if w.migration_done() else None)


def run(w: World, choices, check: bool = True, invariants=None, max_steps: int | None = None,
        keep_log: bool = True, extend: bool = False) -> RunResult:
    """Apply ``choices`` (a list, or a :class:`RandomScheduler`) to ``w`` and check invariants.

    Stops at the first property violation; a :class:`ModelError` (lock order) counts as a
    violation of its check, and a random run that never completes violates ``progress``. Rule
    violations are collected in ``rule_violations`` and the run goes on. After a coverage
    violation, ``extend`` drives the world on to completion (:func:`extend_to_completion`) to show
    the lost write."""
    from dirtyproof.spec import Checker, Violation

    checker = Checker(w.design, invariants)
    res = RunResult(design=w.design.name, checked=checker.checked)
    sched = choices if isinstance(choices, RandomScheduler) else None
    it = iter(choices) if sched is None else None
    limit = max_steps if max_steps is not None else (
        None if sched is None else sched.steps * 50 + 20000)
    while True:
        if sched is not None:
            choice = sched.next_choice(w)
            if choice is None:
                break
        else:
            choice = next(it, None)
            if choice is None:
                break
        idx = len(res.choices)
        if limit is not None and idx >= limit:
            res.violation = Violation("progress", f"no completion after {idx} steps")
            res.violation_step = idx
            break
        res.choices.append(list(choice))
        try:
            label = w.step(choice)
        except ModelError as exc:
            res.violation = Violation(exc.invariant, str(exc))
            res.violation_step = idx
            if keep_log:
                res.log.append(StepRecord(idx, list(choice), f"!! {exc}"))
            break
        except BadChoice:
            raise
        except Exception as exc:  # a bug in design code, not a verdict
            from .crash import describe, design_label
            raise DesignCrash(f"design {design_label(w.design)} crashed at step {idx} {list(choice)}: "
                              f"{describe(exc)}") from exc
        if keep_log:
            res.log.append(StepRecord(idx, list(choice), label))
        if check:
            v = checker.after_step(w, idx)
            if v is not None:
                res.violation, res.violation_step = v, idx
                if extend and v.invariant == "coverage":
                    res.extension, res.lost_write = extend_to_completion(w)
                break
        cycle = w.deadlock() if w.lock_waiters() else None
        if cycle:
            res.violation = Violation("progress", f"deadlock: {cycle}")
            res.violation_step = idx
            break
    res.rule_violations = list(checker.rule_violations)
    res.completed = w.migration_done()
    res.syncs = w.total_syncs
    res.pages_sent = w.total_sent
    return res


__all__ = ["RandomScheduler", "RunResult", "StepRecord", "run", "extend_to_completion", "BadChoice", "DesignCrash"]
