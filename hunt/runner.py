"""Running a hunt: from a pytest file (:func:`hunt_test`) or programmatically (:func:`hunt`)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from hypothesis import Verbosity
from hypothesis import seed as hyp_seed
from hypothesis.stateful import run_state_machine_as_test

from .machine import ShrinkBudgetSpent, machine_for
from .profiles import get_settings
from .report import HuntViolation
from .shrink import SHRINK_REPLAYS, SHRINK_SECONDS, shrink_violation


def hunt_test(design_cls, profile: str | None = None, trace_dir: str | None = None, **settings_overrides):
    """A pytest test function hunting ``design_cls``: ``test_mine = hunt_test(MyDesign)``.

    ``profile`` picks the settings (default ``$DIRTYPROOF_PROFILE`` or ``ci``); keyword arguments
    override single Hypothesis settings (``max_examples=50``)."""
    machine = machine_for(design_cls, trace_dir=trace_dir,
                          settings=get_settings(profile, **settings_overrides))

    def test_hunt() -> None:
        run_state_machine_as_test(machine, settings=machine.TestCase.settings)

    test_hunt.__name__ = f"test_hunt_{machine.__name__[5:]}"
    test_hunt.__doc__ = f"Hunt {machine.design_spec} for invariant violations with Hypothesis."
    return test_hunt


@dataclass
class HuntReport:
    """The outcome of one design's hunt."""

    design: str
    found: HuntViolation | None
    examples: int
    steps: int
    seconds: float
    first_failure_examples: int | None = None
    first_failure_seconds: float | None = None

    @property
    def verdict(self) -> str:
        """``unsafe`` when a violation was found, else ``safe`` (no violation within the budget)."""
        return "unsafe" if self.found is not None else "safe"


def hunt(design_cls, examples: int | None = None, budget: float | None = None, profile: str | None = None,
         seed: int | None = None, trace_dir: str | None = None, progress=None, quiet: bool = True,
         shrink_budget: int | None = 300, schedules: int = 0, **settings_overrides) -> HuntReport:
    """Hunt ``design_cls`` and report. ``examples`` caps the examples of one Hypothesis run;
    ``budget`` (seconds) runs rounds of examples with successive seeds until the time is spent or a
    violation is found. ``seed`` fixes the random seed (else the profile decides). ``progress`` is
    called with a stats dict about once a second. ``shrink_budget`` caps the examples spent
    shrinking after the first counterexample (``None``: Hypothesis shrinks to the end); the
    shortest counterexample seen is reported. ``schedules``: when the machine finds nothing, also
    try that many seeded long random schedules (:func:`schedule_sweep`) for deep states."""
    overrides = dict(settings_overrides)
    if examples is not None:
        overrides["max_examples"] = examples
    elif budget is not None:
        overrides["max_examples"] = 50      # rounds short enough to stop near the budget
    if quiet:
        overrides["verbosity"] = Verbosity.quiet
    if seed is not None or budget is not None:
        overrides["derandomize"] = False
    settings = get_settings(profile, **overrides)
    machine = machine_for(design_cls, trace_dir=trace_dir, settings=settings)
    stats = machine.stats
    t0 = time.perf_counter()
    stats["t0"] = t0
    stats["shrink_budget"] = shrink_budget
    if progress is not None:
        last = [t0]

        def tick(s):
            now = time.perf_counter()
            if now - last[0] >= 1.0:
                last[0] = now
                progress(s, now - t0)
        stats["progress"] = tick
    found = None
    round_no = 0
    while True:
        if seed is not None or budget is not None:
            hyp_seed((seed or 0) + round_no)(machine)
        try:
            run_state_machine_as_test(machine, settings=settings)
        except HuntViolation as exc:
            found = stats.get("final", exc)
        except (ShrinkBudgetSpent, Exception):
            # Hypothesis may wrap our stop in an error of its own; the stats say it was ours
            if not stats.get("budget_spent"):
                raise
            found = stats["best"]
        round_no += 1
        if found is not None or budget is None or time.perf_counter() - t0 >= budget:
            break
    if found is not None and stats.get("budget_spent") and found.invariant != "progress":
        # Hypothesis stopped shrinking early: finish with delta debugging of the schedule
        # bounded by replays (deterministic); the time limit is only a guard against a runaway shrink
        shrunk = shrink_violation(found, seconds=120.0, max_replays=2000, trace_dir=trace_dir)
        if shrunk.length < found.length or found.report is None:
            found = shrunk
    if found is not None and found.report is None:
        found.finalise(trace_dir)
    if found is None and schedules:
        found, steps = schedule_sweep(design_cls, schedules, trace_dir)
        stats["steps"] = stats.get("steps", 0) + steps
    return HuntReport(machine.design_spec, found, stats.get("examples", 0), stats.get("steps", 0),
                      time.perf_counter() - t0, stats.get("first_failure_examples"),
                      stats.get("first_failure_seconds"))


SWEEP_STEPS = 300


def schedule_sweep(design_cls, count: int, trace_dir: str | None = None, steps: int = SWEEP_STEPS,
                   shrink_seconds: float = SHRINK_SECONDS, shrink_replays: int = SHRINK_REPLAYS):
    """Run ``count`` seeded swarm schedules (:func:`strategies.swarm_scheduler`, small worlds of
    :func:`strategies.sweep_config` in turn) of ``steps`` free steps each; return (first violation
    or ``None``, steps run).

    Deep states (several syncs, background syncs after > 5 s idle) are cheap to reach this way and
    expensive for the Hypothesis machine. The first counterexample is shrunk by delta debugging
    (:mod:`.shrink`, bounded by ``shrink_seconds`` and ``shrink_replays``); the returned violation
    is the shrunk one, its step list and trace saved, and its ``shrink`` attribute says how far
    the shrink got."""
    from dirtyproof.impl import World
    from dirtyproof.impl.scheduler import run

    from .report import design_spec_of
    from .strategies import swarm_scheduler, sweep_config

    total = 0
    for i in range(count):
        cfg = sweep_config(i)
        res = run(World(cfg, design_cls), swarm_scheduler(i, steps), keep_log=False)
        total += res.steps
        if res.violation is not None and res.violation.invariant != "progress":
            exc = HuntViolation(design_cls, design_spec_of(design_cls), cfg, res.choices, [],
                                res.violation, res.violation_step)
            shrunk = shrink_violation(exc, shrink_seconds, shrink_replays, trace_dir)
            shrunk.sweep_index = i          # the schedule that found it: count = i + 1 finds it again
            return shrunk, total
    return None, total
