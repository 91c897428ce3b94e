"""Benchmark of the hunter (not part of pytest): machine steps per second, and per mutant the
median time and examples to the first counterexample over several seeds.

    python benchmarks/bench_hunt.py [--seeds 5] [--examples 400] [--mutant NAME ...]

Targets: every mutant found within 10 s in every seed, median under 2 s; PASS/FAIL per row.
Mutants the manifest records as found by seeded schedules are timed through that sweep (swarm
schedules on small worlds): their time is to the first failing schedule ("ex" counts schedules),
the shrink after it is not counted, and the last column gives the shrunk length (the same for
every seed: the sweep is seeded by schedule index).
"""
from __future__ import annotations

import argparse
import statistics
import time

from dirtyproof.hunt import hunt
from dirtyproof.hunt.runner import SWEEP_STEPS, schedule_sweep
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.mutants import MUTANTS, load_manifest

FOUND_WITHIN_S = 10.0
MEDIAN_UNDER_S = 2.0


def steps_per_second(examples: int = 60) -> float:
    """Atomic world steps per second of the machine on the legacy design (ci profile)."""
    rep = hunt(DESIGNS["legacy"], examples=examples, profile="ci")
    return rep.steps / rep.seconds


def time_to_first(name: str, seed: int, examples: int, entry: dict) -> tuple[float | None, int | None, int | None]:
    """(seconds, examples, steps of the reported counterexample) to the first counterexample of
    mutant ``name`` with ``seed``."""
    cls = MUTANTS[name]
    if entry.get("found_by") == "schedules":
        # time to the first failing schedule, not counting the delta-debugging shrink after it
        from dirtyproof.impl import World
        from dirtyproof.impl.scheduler import run
        from dirtyproof.hunt.strategies import swarm_scheduler, sweep_config
        t0 = time.perf_counter()
        for i in range(entry["schedules"]):
            res = run(World(sweep_config(i), cls), swarm_scheduler(i, SWEEP_STEPS), keep_log=False)
            if res.violation is not None and res.violation.invariant != "progress":
                first = time.perf_counter() - t0
                found, _ = schedule_sweep(cls, i + 1, "/tmp/dirtyproof-bench")
                return first, i + 1, found.length
        return None, None, None
    rep = hunt(cls, examples=examples, seed=seed, shrink_budget=0, trace_dir="/tmp/dirtyproof-bench")
    return rep.first_failure_seconds, rep.first_failure_examples, None


def main(argv=None) -> int:
    """Print the table; exit 0 when every row passes."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--examples", type=int, default=400, help="example cap per seed")
    ap.add_argument("--mutant", action="append", help="only these mutants")
    args = ap.parse_args(argv)
    manifest = load_manifest()["mutants"]
    print(f"machine: {steps_per_second():.0f} atomic steps/s (legacy, ci profile)")
    print(f"{'mutant':30s} {'found':>7s} {'median s':>9s} {'max s':>7s} {'median ex':>10s}  verdict  shrunk")
    ok_all = True
    for name in args.mutant or list(MUTANTS):
        times, exs, lengths = [], [], []
        for seed in range(args.seeds):
            t, n, length = time_to_first(name, seed, args.examples, manifest[name])
            if length is not None:
                lengths.append(length)
            if t is not None:
                times.append(t)
                if n is not None:
                    exs.append(n)
        found = len(times)
        med = statistics.median(times) if times else float("inf")
        worst = max(times) if times else float("inf")
        ok = found == args.seeds and worst <= FOUND_WITHIN_S and med < MEDIAN_UNDER_S
        ok_all &= ok
        print(f"{name:30s} {found:>3d}/{args.seeds:<3d} {med:9.2f} {worst:7.2f} "
              f"{(statistics.median(exs) if exs else float('nan')):10.0f}  {'PASS' if ok else 'FAIL':7s}"
              f"  {max(lengths) if lengths else ''}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
