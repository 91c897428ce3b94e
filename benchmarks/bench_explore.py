"""Benchmark of the explorer (not part of pytest): distinct states per second; states and time to
exhaust each shipped design's default bound, run by run; per mutant, the explorer's counterexample
length beside the bound on the hunt's (mutants/manifest.json).

    python benchmarks/bench_explore.py [--designs] [--mutants] [--mutant NAME ...] [--design NAME ...]
                                       [--deep] [--no-subsumption] [--all-deadlines]

The default bound is the portfolio of explore/portfolio.py, each run in its order (moves spent,
then depth), partial-order reduction, budget subsumption (``--no-subsumption``: off) and read
deadlines (``--all-deadlines``: clock moves past every deadline of the config) on,
stopped at the first violation (as ``check`` runs it); ``--deep``: the deep bound's own runs.
Every row records the load (``os.getloadavg``) beside its time: the state counts do not depend on
it, the seconds do.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import time

from dirtyproof.explore import Bounds, default_config, explore
from dirtyproof.explore.portfolio import deep_entries
from dirtyproof.explore.reductions import Reductions
from dirtyproof.explore.run import portfolio_runs
from dirtyproof.explore.verdict import judge
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.mutants import MUTANTS, load_manifest


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def rate() -> tuple[float, int, float]:
    """Distinct states per second exhausting periodic's zero-move bound in manual mode (two
    threads: replays and fingerprints both count)."""
    b = Bounds(guest_writes=0, device_writes=0, clock_moves=0, cancels=0, moves=0)
    res = explore(DESIGNS["periodic"], default_config("manual"), b)
    return res.distinct / res.seconds, res.distinct, res.seconds


def design_rows(names, runs=None, reductions=None) -> None:
    """States and time of every run of the default bound (or ``runs``), per shipped design."""
    print("| design | run | distinct | subsumed | generated | depth | seconds | load | outcome |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        j = judge(DESIGNS[name], name, trace_dir="/tmp/bench_explore_traces", runs=runs, reductions=reductions)
        for r in j.runs:
            out = r.outcome + (f" in {r.steps} steps" if r.steps is not None else "")
            print(f"| {name} | {r.label} | {r.distinct} | {r.subsumed} | {r.generated} | {r.depth} | {r.seconds:.1f} | "
                  f"{_load()} | {out} |", flush=True)
        print(f"| {name} | all | {sum(r.distinct for r in j.runs)} | {sum(r.subsumed for r in j.runs)} | "
              f"{sum(r.generated for r in j.runs)} | | {j.seconds:.1f} | {_load()} | {j.verdict} |", flush=True)


def mutant_rows(names) -> None:
    """Per mutant: the run that finds it, the property, the explorer's counterexample length
    beside the hunt's bound, and the states and time it took."""
    manifest = {**load_manifest()["mutants"], **load_manifest()["designs"]}
    print("| mutant | run | property (hunt's) | explorer steps | hunt max_steps | distinct | seconds | load |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        cls = MUTANTS.get(name) or DESIGNS[name]
        entry = manifest[name]
        j = judge(cls, name, trace_dir="/tmp/bench_explore_traces")
        distinct = sum(r.distinct for r in j.runs)
        if j.verdict != "unsafe":
            print(f"| {name} | not found ({j.verdict}) | ({entry['property']}) | - | {entry['max_steps']} | "
                  f"{distinct} | {j.seconds:.1f} | {_load()} |", flush=True)
        else:
            print(f"| {name} | {j.label} | {j.invariant} ({entry['property']}) | {j.steps} | {entry['max_steps']} | "
                  f"{distinct} | {j.seconds:.1f} | {_load()} |", flush=True)


def main() -> None:
    """Run the benchmark and print Markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", action="store_true", help="only the shipped designs' rows")
    ap.add_argument("--mutants", action="store_true", help="only the mutant rows")
    ap.add_argument("--design", action="append", choices=list(DESIGNS), help="only these shipped designs")
    ap.add_argument("--mutant", action="append", help="only these mutants (or background-v1)")
    ap.add_argument("--deep", action="store_true",
                    help="the designs' rows over the deep bound's own runs (explore/portfolio.py deep_entries)")
    ap.add_argument("--no-subsumption", action="store_true", help="the designs' rows without budget subsumption")
    ap.add_argument("--all-deadlines", action="store_true",
                    help="the designs' rows with clock moves past every deadline of the config (no read deadlines)")
    args = ap.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"# bench_explore {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; uptime: {load}")
    r, n, s = rate()
    print(f"rate: {r:.0f} distinct states/s (periodic, manual, no move: {n} states in {s:.1f} s, load {_load()})\n")
    if not args.mutants and not args.mutant:
        design_rows(args.design or list(DESIGNS), portfolio_runs(deep_entries()) if args.deep else None,
                    Reductions(subsumption=not args.no_subsumption, deadlines=not args.all_deadlines)
                    if args.no_subsumption or args.all_deadlines else None)
        print()
    if not args.designs and not args.design:
        mutant_rows(args.mutant or [*MUTANTS, "background-v1"])


if __name__ == "__main__":
    main()
