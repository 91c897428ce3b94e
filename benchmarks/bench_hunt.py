"""Benchmark of the hunter (not part of pytest): machine steps per second, and per mutant the
median time and examples to the first counterexample over several seeds.

    python benchmarks/bench_hunt.py [--seeds 5] [--examples 400] [--mutant NAME ...]

Targets: every mutant found within 10 s in every seed, median under 2 s; PASS/FAIL per row.
Each seed is one ``hunt(mutant, seed=s)`` as ``dirtyproof hunt --seed s`` runs it: the seeded swarm
schedules of the ci profile (each with its own drawn world, config, weights and features off,
``hunt/swarm.py``; every fourth a plain random run on a named world), then the Hypothesis machine. The time is to the first failing
schedule or example (the shrink after it is not counted); "sched"/"ex" count the swarm schedules
and machine examples run until then; the last columns give which search found it and the
longest shrunk counterexample over the seeds. ``--machine-only`` times the Hypothesis machine
without the swarm schedules (the hunter before the sweep came first).
"""
from __future__ import annotations

import argparse
import statistics

from dirtyproof.hunt import hunt
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.mutants import MUTANTS, load_manifest

FOUND_WITHIN_S = 10.0
MEDIAN_UNDER_S = 2.0


def steps_per_second(examples: int = 60) -> float:
    """Atomic world steps per second of the machine on the legacy design (ci profile)."""
    rep = hunt(DESIGNS["legacy"], examples=examples, profile="ci", schedules=0)
    return rep.steps / rep.seconds


def time_to_first(name: str, seed: int, examples: int, machine_only: bool = False):
    """The hunt of mutant ``name`` with ``seed``: (seconds to the first counterexample, schedules
    and examples run until then, which search found it, length of the reported counterexample),
    or ``None`` if nothing was found."""
    rep = hunt(MUTANTS[name], examples=examples, seed=seed, shrink_budget=0,
               schedules=0 if machine_only else None, trace_dir="/tmp/dirtyproof-bench")
    if rep.found is None:
        return None
    if rep.found_by == "sweep":
        return rep.first_failure_seconds, rep.first_failure_schedules, 0, "sweep", rep.found.length
    return rep.first_failure_seconds, rep.schedules, rep.first_failure_examples, "machine", rep.found.length


def main(argv=None) -> int:
    """Print the table; exit 0 when every row passes."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--examples", type=int, default=400, help="example cap per seed")
    ap.add_argument("--mutant", action="append", help="only these mutants")
    ap.add_argument("--machine-only", action="store_true", help="no swarm schedules, the machine alone")
    args = ap.parse_args(argv)
    print(f"machine: {steps_per_second():.0f} atomic steps/s (legacy, ci profile)")
    print(f"{'mutant':30s} {'found':>7s} {'median s':>9s} {'max s':>7s} {'sched':>6s} {'ex':>5s}  "
          f"verdict  by       shrunk")
    ok_all = True
    # the unsafe mutants: a safe one (it breaks only a rule) has nothing to be found
    unsafe = [n for n in MUTANTS if load_manifest()["mutants"][n]["verdict"] == "unsafe"]
    for name in args.mutant or unsafe:
        rows = [time_to_first(name, seed, args.examples, args.machine_only) for seed in range(args.seeds)]
        hits = [r for r in rows if r is not None]
        times = [r[0] for r in hits]
        med = statistics.median(times) if times else float("inf")
        worst = max(times) if times else float("inf")
        ok = len(hits) == args.seeds and worst <= FOUND_WITHIN_S and med < MEDIAN_UNDER_S
        ok_all &= ok
        by = "/".join(sorted({r[3] for r in hits})) or "-"
        sched = statistics.median(r[1] for r in hits) if hits else float("nan")
        ex = statistics.median(r[2] for r in hits) if hits else float("nan")
        print(f"{name:30s} {len(hits):>3d}/{args.seeds:<3d} {med:9.2f} {worst:7.2f} {sched:6.0f} {ex:5.0f}  "
              f"{'PASS' if ok else 'FAIL':7s}  {by:8s} {max((r[4] for r in hits), default='')}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
