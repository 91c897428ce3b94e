"""The engines besides the prover that judge a design: seeded random runs, the counting lemmas and
the hunt, and the explorer over its default bound. ``check`` runs all of them on every design;
``prove`` runs the first two and the explorer instead of the prover for a design without a
per-page encoding."""
from __future__ import annotations

import sys
from dataclasses import dataclass

RUN_SEEDS = 3
RUN_STEPS = 400


def random_runs(cls, cfg_text: str, seeds: int = RUN_SEEDS, steps: int = RUN_STEPS) -> str:
    """Seeded random runs of the reference model in one configuration: ``violation (...)`` or ``ok``
    (every run completed with every invariant checked after every step)."""
    from dirtyproof.impl.scheduler import RandomScheduler
    from dirtyproof.checked import run
    from dirtyproof.impl.world import World
    from dirtyproof.proofs.runner import config_of, parse_config

    cfg = config_of(*parse_config(cfg_text))
    for seed in range(seeds):
        res = run(World(cfg, cls), RandomScheduler(seed, steps), keep_log=False)
        if res.violation is not None:
            return f"violation ({res.violation.invariant}, seed {seed})"
        if not res.completed:
            return f"violation (progress, seed {seed}: did not complete)"
    return "ok"


def counting_verdict(cls) -> tuple[str, str]:
    """Whether the counting lemmas cover ``cls``'s counters (``proofs.counting_conformance``):
    (``safe``/``unsafe``/``unknown``, why when unknown). A design's own crash or broken step is
    not caught here: it is bad input wherever it shows."""
    from dirtyproof.impl.crash import describe
    from dirtyproof.impl.scheduler import DesignCrash
    from dirtyproof.proofs.counting_conformance import check_counting
    from dirtyproof.proofs.solver import QueryRunner
    try:
        return check_counting(cls, QueryRunner()).verdict, ""
    except DesignCrash:
        raise
    except Exception as exc:  # noqa: BLE001 - a sync that cannot be run alone is "unknown", with why
        from .interrupt import was_interrupted
        if was_interrupted():     # a Ctrl-C that ctypes wrapped in an ArgumentError: still a Ctrl-C
            raise KeyboardInterrupt from exc
        return "unknown", f"the design's sync cannot be run alone: {describe(exc)}"


# check's default hunt: a fixed amount of work from fixed seeds, so that its verdict, property and
# counterexample do not depend on the machine's load (the old default, 4 s of wall time, could miss
# the two timer races of tests/user_designs/threads.py above a load of about 3). Measured on 2
# cores on 2026-12-02: alone, the old 4 s hunts of the shipped designs got through 50-75 sweep
# schedules and 56-118 machine examples at load 1.6-2.0 (the first sweep is capped at 50, then a
# machine round of 50 examples); inside `dirtyproof check`, sharing the cores with the proofs and
# the explorer, 28-40 schedules and 55-77 examples at load 1.7-3.1 (check's own four processes
# included), too few for the races' schedule 35 on a busier machine. Rounded to the first sweep
# and one machine round: 50 schedules, then 50 examples (every shipped design, corpus mutant and
# user design gets its expected verdict; check of the six shipped designs: 27.3 s at load 1.7-1.8,
# against 45 s with --hunt-budget 4 at load 1.7-2.9).
# The sweep runs first: it finds every dev-set design it finds at all sooner than the machine
# (the timer races at its schedules 31 and 35).
CHECK_SCHEDULES = 50
CHECK_EXAMPLES = 50


@dataclass(frozen=True)
class HuntBudget:
    """How much a check's hunt does: ``schedules`` sweep schedules and ``examples`` Hypothesis
    machine examples from seed 0 (deterministic: the default), or ``seconds`` of wall time
    (``--hunt-budget``: how far it gets depends on the machine's load)."""

    schedules: int | None = None
    examples: int | None = None
    seconds: float | None = None

    def describe(self) -> str:
        """The budget in words, for check's progress line and table."""
        if self.seconds is not None:
            return f"a {self.seconds:g} s hunt (wall clock: load-dependent)"
        return f"a hunt of {self.limit()}"

    def limit(self) -> str:
        """The budget's amount alone (``50 schedules + 50 examples``, ``4 s``), for progress lines."""
        if self.seconds is not None:
            return f"{self.seconds:g} s"
        return f"{self.schedules} schedules + {self.examples} examples"


def hunt_verdict(cls, budget: HuntBudget, label: str, trace_dir=None, progress: bool = True) -> tuple[str, object]:
    """The hunter's verdict for ``cls`` within ``budget`` and its report; progress on stderr each second unless ``progress`` is false (a
    worker's caller shows its own). A work budget runs its sweep schedules, then its machine
    examples, both from seed 0: the same verdict, property and counterexample every run."""
    from dirtyproof.hunt.runner import hunt

    work = budget.seconds is None
    limit = budget.limit()

    def show(stats, elapsed):
        sys.stderr.write(f"check: hunting {label}: {elapsed:4.1f} s, {stats.get('schedules', 0)} "
                         f"schedules, {stats.get('examples', 0)} examples (of {limit})\n")
    kwargs = dict(schedules=budget.schedules, examples=budget.examples) if work else dict(budget=budget.seconds)
    rep = hunt(cls, seed=0, progress=show if progress else None,
               trace_dir=None if trace_dir is None else str(trace_dir), **kwargs)
    return rep.verdict, rep


def tail_job(job) -> dict:
    """The engines of one design besides the prover and the explorer, in a worker process
    (``job``: the design's spec, the hunt's :class:`HuntBudget`, the trace folder): the seeded
    random runs in every configuration, the counting lemmas and the hunt, each with its seconds,
    as plain data: ``{"kind": "tail", "spec", "runs": {config: {"verdict", "seconds"}},
    "counting": {"verdict", "why", "seconds"}, "hunt": {"verdict", "detail", "trace", "seconds", "schedules", "examples", "invariant",
    "length"},
    "error"}``. ``check`` runs these beside the proofs, so that no core waits for a serial tail."""
    import time
    spec, budget, traces = job
    out = {"kind": "tail", "spec": spec, "runs": {}, "counting": None, "hunt": None, "error": None}
    try:
        from dirtyproof.checked import resolve
        from dirtyproof.proofs.runner import CONFIGS
        cls = resolve(spec)
        for cfg in CONFIGS:
            t = time.perf_counter()
            out["runs"][cfg] = {"verdict": random_runs(cls, cfg), "seconds": time.perf_counter() - t}
        t = time.perf_counter()
        verdict, why = counting_verdict(cls)
        out["counting"] = {"verdict": verdict, "why": why, "seconds": time.perf_counter() - t}
        t = time.perf_counter()
        verdict, rep = hunt_verdict(cls, budget, spec, traces, progress=False)
        detail, trace = "", None
        if rep.found is not None:
            detail = str(rep.found)
            trace = getattr(rep.found, "trace_path", None)
            trace = str(trace) if trace else None
        out["hunt"] = {"verdict": verdict, "detail": detail, "trace": trace, "seconds": time.perf_counter() - t,
                       "schedules": rep.schedules, "examples": rep.examples,
                       "invariant": None if rep.found is None else rep.found.invariant,
                       "length": None if rep.found is None else rep.found.length}
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - classified here, reported by the parent
        from .failure import classify
        out["error"] = classify(exc)
    return out


def explore_job(job) -> dict:
    """One run of the explorer's default bound on one design, in a worker process (``job``: the
    design's spec, the trace folder and the run's label): ``{"spec", "label", "judgement" (a
    dict), "error"}``, errors classified here where their traceback is (as the prover's workers
    do). ``check`` submits every run of every design at once, so the runs of a big design spread
    over the processes, and takes them in the portfolio's order up to the first violation."""
    spec, traces, label = job
    out = {"spec": spec, "label": label, "judgement": None, "error": None}
    try:
        from dirtyproof.explore.run import portfolio_runs
        from dirtyproof.explore.verdict import judge
        from dirtyproof.checked import resolve
        runs = [r for r in portfolio_runs() if r[0] == label]
        out["judgement"] = judge(resolve(spec), spec, trace_dir=traces, runs=runs).to_json()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - classified here, reported by the parent
        from .failure import classify
        out["error"] = classify(exc)
    return out


__all__ = ["CHECK_EXAMPLES", "CHECK_SCHEDULES", "HuntBudget", "RUN_SEEDS", "RUN_STEPS", "counting_verdict", "explore_job", "hunt_verdict", "random_runs", "tail_job"]
