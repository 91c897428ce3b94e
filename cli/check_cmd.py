"""``dirtyproof check``: prove and hunt the shipped designs (or the named one) and print one table
of verdicts against the recorded expectations; exit 0 iff everything matches."""
from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .common import design_class, design_specs
from .errors import UserError

RUN_SEEDS = 3
RUN_STEPS = 400


def add_arguments(p) -> None:
    """Flags of ``check``."""
    p.add_argument("--design", help="design name or module:Class (default: every shipped design)")
    p.add_argument("--jobs", type=int, default=2, help="processes for the proofs (default 2)")
    p.add_argument("--traces", metavar="DIR", default="traces", help="where counterexample traces go")
    p.add_argument("--hunt-budget", type=float, default=4.0, help="seconds of hunting per design")


def _prove_one(job):
    spec, cfg, traces = job
    from dirtyproof.impl.designs import resolve
    from dirtyproof.proofs.runner import EncodingBug, prove_config
    from dirtyproof.proofs.solver import QueryRunner
    try:
        res = prove_config(spec, resolve(spec), cfg, QueryRunner(), Path(traces))
    except EncodingBug as exc:
        return spec, cfg, "ENCODING-BUG", str(exc), 0.0, None
    trace = str(res.concrete.path) if res.concrete is not None and res.concrete.path else None
    worst = max((o.seconds for o in res.obligations), default=0.0)
    return spec, cfg, res.verdict, "", res.seconds, (trace, worst)


def random_runs(cls, cfg_text: str, seeds: int = RUN_SEEDS, steps: int = RUN_STEPS) -> str:
    """Seeded random runs of the reference model in one configuration: ``violation`` or ``ok``."""
    from dirtyproof.impl import Config
    from dirtyproof.impl.scheduler import RandomScheduler, run
    from dirtyproof.impl.world import World

    from .main import geometry_named
    mode, geo = cfg_text.split("/")
    cfg = Config(geometry=geometry_named(geo, 2), kvm_mode=mode)
    for seed in range(seeds):
        res = run(World(cfg, cls), RandomScheduler(seed, steps), keep_log=False)
        if res.violation is not None:
            return f"violation ({res.violation.invariant}, seed {seed})"
    return "ok"


def hunt_design(cls, budget: float) -> str:
    """The hunter's verdict for a design (``dirtyproof.hunt``), or ``n/a`` if it is not installed."""
    try:
        from dirtyproof.hunt.runner import hunt
    except ImportError:
        return "n/a"
    rep = hunt(cls, budget=budget, seed=0)
    return rep.verdict


def counting_verdict(cls) -> str:
    """Whether the counting lemmas cover ``cls``'s counters (``proofs.counting_conformance``):
    ``safe``, ``unsafe`` (a refuted term) or ``unknown`` (neither, or the sync cannot run alone)."""
    from dirtyproof.proofs.counting_conformance import check_counting
    from dirtyproof.proofs.solver import QueryRunner
    try:
        return check_counting(cls, QueryRunner()).verdict
    except Exception:  # a user's design whose sync cannot be run alone
        return "unknown"


def run(args) -> int:
    """The table; exit 0 iff prover verdicts match expectations and agree with the runs and hunt."""
    from dirtyproof.proofs.runner import CONFIGS, expected_verdicts

    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    specs = design_specs(args.design)
    for s in specs:
        design_class(s)
    expected = expected_verdicts()
    t0 = time.perf_counter()
    jobs = [(s, c, args.traces) for s in specs for c in CONFIGS]
    # longest first (the unsafe ones search for counterexamples)
    jobs.sort(key=lambda j: expected.get(j[0], {}).get(j[1], "safe") != "unsafe")
    if args.jobs == 1:
        results = [_prove_one(j) for j in jobs]
    else:
        with ProcessPoolExecutor(args.jobs) as ex:
            results = list(ex.map(_prove_one, jobs))
    by = {(r[0], r[1]): r for r in results}
    ok = True
    print(f"{'design':14s} {'config':22s} {'expected':9s} {'prover':9s} {'runs':28s} {'time':>7s}  match")
    for spec in specs:
        cls = design_class(spec)
        for cfg in CONFIGS:
            _, _, verdict, err, secs, extra = by[(spec, cfg)]
            want = expected.get(spec, {}).get(cfg, "safe")
            runs = random_runs(cls, cfg)
            match = verdict == want and not (verdict == "safe" and runs != "ok")
            ok &= match
            print(f"{spec:14s} {cfg:22s} {want:9s} {verdict:9s} {runs:28s} {secs:6.1f}s  {'yes' if match else 'NO'}")
            if err:
                print(f"    {err}")
            if extra and extra[0]:
                print(f"    counterexample trace: {extra[0]}")
        counting = counting_verdict(cls)
        ok &= counting == "safe"
        print(f"{spec:14s} {'counting (all sizes)':22s} {'safe':9s} {counting:9s} {'':28s} {'':7s}  "
              f"{'yes' if counting == 'safe' else 'NO'}")
        h = hunt_design(cls, args.hunt_budget)
        any_unsafe = any(by[(spec, c)][2] == "unsafe" for c in CONFIGS)
        # a design the hunt breaks must not be proved safe everywhere; a short hunt may miss a bug
        agree = not (h == "unsafe" and not any_unsafe)
        ok &= agree
        print(f"{spec:14s} {'hunt (all configs)':22s} {'':9s} {'':9s} {h:28s} {'':7s}  "
              f"{'yes' if agree else 'NO'}")
    print(f"check: {'all verdicts as expected' if ok else 'MISMATCH'} in {time.perf_counter() - t0:.1f} s")
    return 0 if ok else 1
