"""Running a hunt: from a pytest file (:func:`hunt_test`) or programmatically (:func:`hunt`)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from hypothesis import Verbosity
from hypothesis import seed as hyp_seed
from hypothesis.stateful import run_state_machine_as_test

from dirtyproof.impl.bitmap import BITS_PER_LONG
from dirtyproof.impl.scheduler import DesignCrash

from .machine import machine_for
from .profiles import get_settings, schedules_for
from .report import HuntViolation
from .shrink import SHRINK_REPLAYS, SHRINK_SECONDS, finalise_shrunk, shrink, shrink_violation


def hunt_test(design_cls, profile: str | None = None, trace_dir: str | None = None,
              schedules: int | None = None, **settings_overrides):
    """A pytest test function hunting ``design_cls``: ``test_mine = hunt_test(MyDesign)``.

    The test runs the same two searches as :func:`hunt`: first ``schedules`` seeded swarm
    schedules (default: the profile's, :data:`profiles.PROFILE_SCHEDULES`), then the Hypothesis
    machine. ``profile`` picks the settings (default ``$DIRTYPROOF_PROFILE`` or ``ci``); keyword
    arguments override single Hypothesis settings (``max_examples=50``)."""
    machine = machine_for(design_cls, trace_dir=trace_dir,
                          settings=get_settings(profile, **settings_overrides))
    count = schedules_for(profile) if schedules is None else schedules

    def test_hunt() -> None:
        sweep = schedule_sweep(design_cls, count, trace_dir)
        if sweep.found is not None:
            raise sweep.found
        run_state_machine_as_test(machine, settings=machine.TestCase.settings)

    test_hunt.__name__ = f"test_hunt_{machine.__name__[5:]}"
    test_hunt.__doc__ = f"Hunt {machine.design_spec} for invariant violations (swarm schedules, then Hypothesis)."
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
    schedules: int = 0                  # swarm schedules run
    found_by: str | None = None         # "sweep" or "machine"
    first_failure_schedules: int | None = None
    rules: tuple = ()                   # RuleFinding per rule broken in some run, shortest first found
    notes: tuple = ()                   # what the hunt changed for this design, in words (word width)

    @property
    def verdict(self) -> str:
        """``unsafe`` when a property was violated, else ``safe`` (none within the budget); rules
        broken on the way are in :attr:`rules` and do not change it."""
        return "unsafe" if self.found is not None else "safe"

    @property
    def rules_broken(self) -> tuple[str, ...]:
        """Ids of the rules some run of the hunt broke."""
        return tuple(r.rule for r in self.rules)


def hunt(design_cls, examples: int | None = None, budget: float | None = None, profile: str | None = None,
         seed: int | None = None, trace_dir: str | None = None, progress=None, quiet: bool = True,
         shrink_budget: int | None = 300, schedules: int | None = None, config_overrides: dict | None = None,
         **settings_overrides) -> HuntReport:
    """Hunt ``design_cls`` and report.

    Two searches, the cheap one first. (1) A sweep of ``schedules`` seeded swarm schedules
    (:func:`schedule_sweep`; default: the profile's count, 0 turns it off): long random runs with
    per-schedule weights that reach deep states (several syncs, background syncs after > 5 s idle,
    cancel and restart) in a fraction of a second each; a failing schedule is shrunk by delta
    debugging. (2) If the sweep finds nothing, the Hypothesis machine: ``examples`` caps the
    examples of one run; ``shrink_budget`` caps the examples spent shrinking after the first
    counterexample (``None``: Hypothesis shrinks to the end), delta debugging finishing the shrink.

    ``budget`` (seconds) alternates the two, each sweep taking the next schedules (at most
    :data:`BUDGET_SWEEP_BLOCK` at a time; the first at most :data:`BUDGET_FIRST_SWEEP` or
    :data:`BUDGET_FIRST_SHARE` of the budget) and each machine round of 50 examples a new seed,
    until the time is spent or a violation is found. ``seed`` fixes the random seed of both (else the
    sweep uses seed 0 and the profile decides for the machine).
    ``config_overrides`` (``Config`` fields, e.g. ``{"free_page_hinting": True}``) is applied to
    every world of both searches (:func:`with_overrides`).
    ``progress`` is called with a stats dict about once a second."""
    _check_budgets(examples, budget, schedules)
    config_overrides = check_overrides(config_overrides)
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
    per_sweep = schedules_for(profile) if schedules is None else schedules
    first_sweep = per_sweep
    if budget is not None:
        first_sweep = min(per_sweep, BUDGET_FIRST_SWEEP)
        per_sweep = min(per_sweep, BUDGET_SWEEP_BLOCK)     # alternate: neither search starves
    machine = machine_for(design_cls, trace_dir=trace_dir, settings=settings, config_overrides=config_overrides)
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
    deadline = None if budget is None else t0 + budget
    found, found_by = None, None
    round_no = next_schedule = 0
    while True:
        if per_sweep:
            count, until = per_sweep, deadline
            if round_no == 0 and deadline is not None:
                # the first round is the sweep's larger share (see BUDGET_FIRST_SWEEP)
                count, until = first_sweep, min(deadline, t0 + budget * BUDGET_FIRST_SHARE)
            sweep = schedule_sweep(design_cls, count, trace_dir, seed=seed or 0, start=next_schedule,
                                   deadline=until, stats=stats, config_overrides=config_overrides,
                                   research_guard=1.0 if budget is not None else WORK_RESEARCH_GUARD)
            next_schedule += sweep.schedules
            if sweep.found is not None:
                found, found_by = sweep.found, "sweep"
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
        found = _machine_round(machine, settings, stats, None if seed is None and budget is None
                               else (seed or 0) + round_no)
        if found is not None:
            found_by = "machine"
            break
        round_no += 1
        if deadline is None or time.perf_counter() >= deadline:
            break
    if found_by == "machine" and stats.get("budget_spent") and found.invariant != "progress":
        # Hypothesis stopped shrinking early: finish with delta debugging of the schedule
        # bounded by replays (deterministic); the time limit is only a guard against a runaway shrink
        shrunk = shrink_violation(found, seconds=120.0, max_replays=2000, trace_dir=trace_dir)
        if shrunk.length < found.length or found.report is None:
            found = shrunk
    if found is not None and found.report is None:
        found.finalise(trace_dir)
    rules = tuple(sorted(stats.get("rules", {}).values(), key=lambda r: (r.length, r.rule)))
    for r in rules:
        r.save(trace_dir)
    if found is None and not stats.get("schedules") and not stats.get("examples"):
        raise HuntError("the hunt checked nothing: no schedule and no example ran")
    return HuntReport(machine.design_spec, found, stats.get("examples", 0), stats.get("steps", 0),
                      time.perf_counter() - t0, stats.get("first_failure_examples"),
                      stats.get("first_failure_seconds"), stats.get("schedules", 0), found_by,
                      stats.get("first_failure_schedules"), rules, tuple(stats.get("notes", ())))


class HuntError(ValueError):
    """A hunt asked to check nothing (no time, no examples, no schedules): refused, not passed."""


def check_overrides(overrides) -> dict | None:
    """``overrides`` if it names ``Config`` fields with values a ``Config`` accepts, ``None`` if
    empty; :class:`HuntError` otherwise (checked before any world is built)."""
    if not overrides:
        return None
    from dirtyproof.impl import Config
    if not isinstance(overrides, dict):
        raise HuntError(f"config overrides must be a dict of Config fields, not {overrides!r}")
    try:
        with_overrides(Config(), overrides)
    except (TypeError, ValueError) as exc:
        raise HuntError(f"bad config override: {exc}") from None
    return dict(overrides)


def with_overrides(cfg, overrides):
    """``cfg`` with the ``Config`` fields in ``overrides`` replaced (``cfg`` itself if none)."""
    if not overrides:
        return cfg
    import dataclasses
    return dataclasses.replace(cfg, **overrides)


def _check_budgets(examples, budget, schedules) -> None:
    """Refuse budgets that would check nothing, or are not numbers of the right kind."""
    if examples is not None and (not isinstance(examples, int) or isinstance(examples, bool) or examples < 1):
        raise HuntError(f"examples must be a whole number >= 1, not {examples!r}")
    if budget is not None and (not isinstance(budget, (int, float)) or isinstance(budget, bool)
                               or not budget > 0 or budget == float("inf")):
        raise HuntError(f"budget must be a positive number of seconds, not {budget!r}")
    if schedules is not None and (not isinstance(schedules, int) or isinstance(schedules, bool) or schedules < 0):
        raise HuntError(f"schedules must be a whole number >= 0, not {schedules!r}")


def _machine_round(machine, settings, stats, seed: int | None) -> HuntViolation | None:
    """One run of the Hypothesis machine (seeded when ``seed`` is not ``None``); its violation."""
    if seed is not None:
        hyp_seed(seed)(machine)
    try:
        run_state_machine_as_test(machine, settings=settings)
    except HuntViolation as exc:
        if stats.get("crash") is not None:
            raise stats["crash"] from stats["crash"].__cause__
        return stats.get("final", exc)
    except KeyboardInterrupt:
        raise
    except BaseException:
        crash = stats.get("crash")
        if crash is not None:
            # the design's own crash (Hypothesis may report it wrapped): bad input, as it came
            raise crash from crash.__cause__
        # Hypothesis may wrap our stop in an error of its own; the stats say it was ours
        if not stats.get("budget_spent"):
            raise
        return stats["best"]
    return None


SWEEP_STEPS = 300


def sweep_step_limit(steps: int) -> int:
    """Steps a sweep schedule of ``steps`` free steps may take before it violates ``progress``.

    Measured: the shipped designs and the corpus complete 200 sweep schedules of 300 free steps
    within 2450 steps (the plain random arm included); three times that still flags a livelock
    (a send that never ends) in well under a second instead of the random runner's 35000 steps."""
    return steps * 15 + 3000


def _step_limit(steps: int, scheduler) -> int:
    """The step limit of one sweep schedule: :func:`sweep_step_limit`, plus the free steps a
    preemption-arm run has beyond the plain arm's (it runs longer before it switches over)."""
    from .strategies import PLAIN_STEPS
    return sweep_step_limit(steps) + max(0, scheduler.steps - PLAIN_STEPS)


# Swarm schedules per sweep when a hunt has a time budget: sweeps and machine rounds alternate
# (about a second each), so a short budget still runs both searches.
BUDGET_SWEEP_BLOCK = 25
# The first sweep of a budgeted hunt runs up to BUDGET_FIRST_SWEEP schedules or until
# BUDGET_FIRST_SHARE of the budget is spent, whichever comes first, before the first machine
# round. The sweep finds every dev-set design it finds at all sooner than the machine (the
# machine alone finds one user-style design the sweep misses, within 5 examples): a first block
# of 25 put the preemption arm's 5th and 6th runs (schedules 31 and 35, where the timer races of
# tests/user_designs are first found) behind a machine round, past check's 4 s at a load of 2-3.
BUDGET_FIRST_SWEEP = 50
BUDGET_FIRST_SHARE = 0.6
# Schedules a sweep still runs after its first failing swarm schedule, so that the counterexample
# it shrinks is the earliest failure of a few.
RUNNERS_UP = 6
# Failing schedules a sweep shrinks, keeping the shortest counterexample.
SHRINK_CANDIDATES = 3
# When only long named-world runs failed, the re-search on smaller worlds gets 1/LONG_SHRINK_SHARE
# of the shrink time as a guard (its find's shrink SMALL_SHRINK_SHARE times that); the long run,
# shrunk only when the re-search finds nothing, gets what the re-search left of that share (at
# least a quarter of it).
LONG_SHRINK_SHARE = 10


def _small_counterexample(design_cls, failure, seed: int, seconds: float, replays: int,
                          trace_dir: str | None):
    """For a long run's ``failure`` (``(step, index, cfg, res)`` of :func:`schedule_sweep`): the
    finalised counterexample of the same property re-found by the same arm on a smaller world
    and delta-debugged (:mod:`.resmall`), if it is shorter than the long run; else ``None`` (the
    long run is then shrunk as before). ``seconds`` guards the re-search and, again, its shrink;
    the shrink is bounded by :data:`SMALL_SHRINK_REPLAYS` replays (deterministic)."""
    from .report import design_spec_of
    from .resmall import research_small
    from .strategies import PLAIN_STEPS, arm_name
    from .preempt import PREEMPT_STEPS

    step, i, cfg, res = failure
    arm = arm_name(i)
    inv = res.violation.invariant
    if inv == "progress" or arm not in ("plain", "preempt"):
        return None
    t0 = time.perf_counter()
    found = research_small(design_cls, cfg, arm, PLAIN_STEPS if arm == "plain" else PREEMPT_STEPS, inv,
                           res.violation.page, seed, i, seconds)
    if not found.finds:
        return None
    f = found.finds[0]
    sh = shrink(design_cls, f.world.config, f.choices, inv, seconds * SMALL_SHRINK_SHARE,
                min(replays, SMALL_SHRINK_REPLAYS))
    if sh.length >= step + 1:
        return None
    exc = HuntViolation(design_cls, design_spec_of(design_cls), f.world.config, f.choices, [], f.violation,
                        len(f.choices) - 1)
    shrunk = finalise_shrunk(exc, sh, trace_dir)
    shrunk.sweep_index, shrunk.sweep_seed, shrunk.sweep_arm = i, seed, arm
    shrunk.small_world = SmallOrigin(step + 1, cfg, f.world.describe(), f.seed, f.steps, found.runs,
                                     time.perf_counter() - t0)
    return shrunk


@dataclass(frozen=True)
class SmallOrigin:
    """Where a counterexample re-found on a smaller world comes from (:mod:`.resmall`): the long
    run's length and world, how the smaller world was made, the re-search run's seed and free
    steps, the re-search's runs and the seconds of the re-search and its shrink."""

    long_steps: int
    long_config: object
    world: str
    seed: int
    steps: int
    runs: int
    seconds: float

    def describe(self) -> str:
        """One line for a report."""
        return (f"re-found on a smaller world: the sweep's long run broke the same property in "
                f"{self.long_steps} steps on a {self.long_config.geometry.total_pages}-page world; the same arm "
                f"(seed {self.seed}, {self.steps} free steps) broke it on {self.world}, shrunk to "
                f"this ({self.runs} re-search runs, {self.seconds:.1f} s)")


# A hunt with a work budget (counts, no ``budget``; check's default) promises the same result every
# run, so its re-search on smaller worlds is bounded by its rounds (deterministic) and its time
# guard widened this many times (2 s -> 10 s, its shrink's 3 s -> 15 s): measured on 2 cores, the
# timer race user-slots-lock-dropped-get-or's re-search and shrink took 2.6 s at load 2.7, and a
# hunt of 75 schedules gave a 108-step counterexample at load 1.4 but a 402-step one at load 2.7
# with the 2 s guard. A budgeted hunt keeps the plain guard: its result depends on the load anyway.
WORK_RESEARCH_GUARD = 5.0

# The re-search's best find (fewest pages, then fewest steps) is shrunk with at most
# SMALL_SHRINK_REPLAYS replays (deterministic), guarded by SMALL_SHRINK_SHARE times the
# re-search's seconds. Measured (benchmarks/README.md): a 250-step find in a 16-page world
# shrinks to 120 steps in about 600 replays of 5 ms; a 180-step one in an 8-page world to 53 in 250.
SMALL_SHRINK_REPLAYS = 1500
SMALL_SHRINK_SHARE = 1.5


def _at_full_width(cfg):
    """``cfg`` with its geometry at the host's full word width (QEMU's BITS_PER_LONG, 64)."""
    from dataclasses import replace

    return replace(cfg, geometry=replace(cfg.geometry, word_bits=BITS_PER_LONG))


@dataclass
class SweepResult:
    """What a sweep did: the (shrunk) first violation or ``None``, world steps and schedules run."""

    found: HuntViolation | None
    steps: int
    schedules: int


def sweep_seed(seed: int, index: int) -> int:
    """The scheduler seed of swarm schedule ``index`` in a sweep seeded ``seed`` (seed 0: the index)."""
    return seed * 1_000_003 + index


def schedule_sweep(design_cls, count: int, trace_dir: str | None = None, steps: int = SWEEP_STEPS,
                   shrink_seconds: float = SHRINK_SECONDS, shrink_replays: int = SHRINK_REPLAYS,
                   seed: int = 0, start: int = 0, deadline: float | None = None,
                   stats: dict | None = None, config_overrides: dict | None = None,
                   research_guard: float = 1.0) -> SweepResult:
    """Run swarm schedules ``start .. start+count-1`` of the sweep seeded ``seed``: schedule ``i``
    is a swarm schedule seeded :func:`sweep_seed` (:mod:`.swarm`: its world, config, weights and
    features off all drawn from that seed), ``steps`` free steps then completion, or every fourth
    a long run on a named world, the plain random scheduler or the preemption arm
    (:func:`strategies.sweep_arm`, :mod:`.preempt`); completion must
    come within :func:`sweep_step_limit` steps (``progress``, as in ``dirtyproof run``). Stop
    :data:`RUNNERS_UP` schedules after the first failing swarm schedule, keeping the failure with
    the fewest steps; a failing long run alone does not stop the sweep (its long schedule
    shrinks poorly: a swarm failure is preferred; if none comes, the shortest long one is
    re-searched on smaller worlds by its own arm (:func:`_small_counterexample`,
    :mod:`.resmall`) and that find shrunk, or else shrunk itself with what is left of a tenth of
    the shrink budget), nor
    does anything once ``time.perf_counter()`` passes ``deadline``.

    Deep states (several syncs, background syncs after > 5 s idle) are cheap to reach this way and
    expensive for the Hypothesis machine. The first counterexample is shrunk by delta debugging
    (:mod:`.shrink`, bounded by ``shrink_seconds`` and ``shrink_replays``); the returned violation
    is the shrunk one, its step list and trace saved; its ``shrink`` attribute says how far the
    shrink got, ``sweep_index``/``sweep_seed`` which schedule found it and ``sweep_arm`` its arm. ``stats`` (a hunt's)
    gets the schedules and steps run, the time of the first failure, and its ``progress`` call.
    ``config_overrides`` replaces ``Config`` fields of every schedule's world (free-page hinting).
    ``research_guard`` multiplies the time guard of the re-search on smaller worlds and its shrink
    (a work-budgeted hunt's :data:`WORK_RESEARCH_GUARD`)."""
    from dirtyproof.impl import World
    from dirtyproof.checked import run

    from .report import design_spec_of, note_rule
    from .strategies import arm_name, is_long, sweep_arm
    from .swarm import draw_ring

    stats = {} if stats is None else stats
    total = ran = 0
    failures: list = []
    last = start + count - 1
    for i in range(start, start + count):
        if deadline is not None and time.perf_counter() >= deadline:
            break
        cfg, scheduler = sweep_arm(i, sweep_seed(seed, i), steps)
        cfg = draw_ring(with_overrides(cfg, config_overrides), sweep_seed(seed, i), config_overrides)
        if stats.get("full_width_only"):
            cfg = _at_full_width(cfg)
        try:
            res = run(World(cfg, design_cls), scheduler, keep_log=False, max_steps=_step_limit(steps, scheduler))
        except DesignCrash as exc:
            if cfg.geometry.word_bits == BITS_PER_LONG:
                raise
            # a design written for 64-bit words only (it ignores the world's word width): the
            # narrow widths are not allowed for it; said so, and the sweep draws full-width worlds
            stats["full_width_only"] = True
            stats.setdefault("notes", []).append(
                f"the design crashes in a {cfg.geometry.word_bits}-bit-word world ({exc}); its swarm "
                f"schedules from {i} on run at {BITS_PER_LONG}-bit words")
            cfg, scheduler = sweep_arm(i, sweep_seed(seed, i), steps)
            cfg = _at_full_width(draw_ring(with_overrides(cfg, config_overrides), sweep_seed(seed, i),
                                           config_overrides))
            res = run(World(cfg, design_cls), scheduler, keep_log=False, max_steps=_step_limit(steps, scheduler))
        if res.violation is None and not res.completed:
            from dirtyproof.spec import Violation
            res.violation = Violation("progress", "the migration ended without completing")
            res.violation_step = max(res.steps - 1, 0)
        for rv in res.rule_violations:
            note_rule(stats, design_cls, design_spec_of(design_cls), cfg, res.choices, rv)
        total += res.steps
        ran += 1
        stats["steps"] = stats.get("steps", 0) + res.steps
        stats["schedules"] = stats.get("schedules", 0) + 1
        if stats.get("progress") is not None:
            stats["progress"](stats)
        if res.violation is not None:
            if not failures and "first_failure_seconds" not in stats:
                stats["first_failure_seconds"] = time.perf_counter() - stats.get("t0", time.perf_counter())
                stats["first_failure_schedules"] = stats["schedules"]
            if not is_long(i) and not any(not is_long(f[1]) for f in failures):
                # the first swarm failure: a few more schedules, one may fail sooner
                last = min(last, i + RUNNERS_UP)
            # a long run's failure alone does not stop the sweep: its long named-world schedule
            # shrinks poorly, so the sweep goes on (to its end at most) for a swarm failure
            failures.append((res.violation_step, i, cfg, res))
        if failures and i >= last:
            break
    if not failures:
        return SweepResult(None, total, ran)
    # shrink the SHRINK_CANDIDATES swarm failures with the fewest steps (a long one only if no
    # swarm schedule failed) and keep the shortest result: delta debugging cannot change the
    # world, so which world failed decides much of the counterexample's length
    ranked = sorted(failures, key=lambda f: (is_long(f[1]), f[0], f[1]))
    if not is_long(ranked[0][1]):
        ranked = [f for f in ranked if not is_long(f[1])]
    else:
        # only long runs failed: shrink the shortest alone, with a tenth of the budget. A
        # replay of a long named-world run takes about 0.1 s, so a shrink's budget barely
        # shortens one (measured: 1551- and 2072-step preemption-arm failures unchanged after
        # 20 s each, the 1551-step one at 869 steps after 120 s); more candidates or the whole
        # budget would only make a user wait longer for the same counterexample
        ranked = ranked[:1]
        shrink_seconds = shrink_seconds / LONG_SHRINK_SHARE
        # first the same arm on smaller worlds (hunt/resmall.py): a short counterexample of the
        # same property there shrinks in seconds; the long run is shrunk (with what is left of
        # its share) and kept only if none is found
        t_small = time.perf_counter()
        small = _small_counterexample(design_cls, ranked[0], seed, shrink_seconds * research_guard, shrink_replays,
                                      trace_dir)
        if small is not None:
            return SweepResult(small, total, ran)
        shrink_seconds = max(shrink_seconds - (time.perf_counter() - t_small), shrink_seconds / 4)
    best = None
    for _, i, cfg, res in ranked[:SHRINK_CANDIDATES]:
        exc = HuntViolation(design_cls, design_spec_of(design_cls), cfg, res.choices, [],
                            res.violation, res.violation_step)
        if res.violation.invariant == "progress":
            # "no completion after N steps" is a property of the whole schedule: a shorter
            # replay does not show it, so it is reported unshrunk
            if best is None:
                best = (exc, None, i)
            break
        sh = shrink(design_cls, cfg, exc.choices, exc.invariant, shrink_seconds, shrink_replays)
        if best is None or sh.length < best[1].length:
            best = (exc, sh, i)
    exc, sh, i = best
    if sh is None:
        exc.finalise(trace_dir)
        shrunk = exc
    else:
        shrunk = finalise_shrunk(exc, sh, trace_dir)
    shrunk.sweep_index, shrunk.sweep_seed = i, seed
    shrunk.sweep_arm = arm_name(i)          # swarm, plain or preempt: which arm's schedule it is
    return SweepResult(shrunk, total, ran)
