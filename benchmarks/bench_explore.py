"""Benchmark of the explorer (not part of pytest): distinct states per second; states and time to
exhaust each shipped design's bound, per KVM mode; per mutant, the explorer's counterexample
length beside the bound on the hunt's (mutants/manifest.json).

    python benchmarks/bench_explore.py [--moves 2] [--max-states N] [--designs] [--mutants] [--mode M ...]

Each row is one ``explore(design, default_config(mode), Bounds(moves=..))`` in the default
order (moves spent, then depth) with the partial-order reduction on. A mutant is explored in
each mode until one finds it; its row names that mode.
"""
from __future__ import annotations

import argparse
import subprocess
import time

from dirtyproof.explore import Bounds, default_config, explore
from dirtyproof.impl.config import KVM_MODES
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.mutants import MUTANTS, load_manifest


def rate(moves: int = 1) -> tuple[float, int, float]:
    """Distinct states per second exhausting legacy (manual mode) within ``moves`` moves."""
    res = explore(DESIGNS["legacy"], default_config("manual"), Bounds(moves=moves))
    return res.distinct / res.seconds, res.distinct, res.seconds


def design_rows(bounds: Bounds, modes) -> None:
    """States and time to exhaust each shipped design's bound, per mode."""
    print(f"| design | mode | distinct | generated | depth | seconds | verdict |")
    print("|---|---|---|---|---|---|---|")
    for name, cls in DESIGNS.items():
        for mode in modes:
            r = explore(cls, default_config(mode), bounds)
            verdict = (f"{r.violation.invariant} in {len(r.path)} steps" if r.violation else
                       "exhaustive" if r.exhaustive else "cut")
            print(f"| {name} | {mode} | {r.distinct} | {r.generated} | {r.depth} | {r.seconds:.1f} | {verdict} |",
                  flush=True)


def mutant_rows(bounds: Bounds, modes, names=None) -> None:
    """Per mutant: where the explorer finds it, how long its counterexample is, and the cost."""
    manifest = {**load_manifest()["mutants"], **load_manifest()["designs"]}
    print("| mutant | found in mode | invariant (expected) | explorer steps | hunt max_steps | distinct | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name in names or [*MUTANTS, "background-v1"]:
        cls = MUTANTS.get(name) or DESIGNS[name]
        entry = manifest[name]
        spent, row = 0.0, None
        for mode in modes:
            r = explore(cls, default_config(mode), bounds)
            spent += r.seconds
            if r.violation is not None:
                row = (mode, r.violation.invariant, len(r.path), r.distinct)
                break
        if row is None:
            print(f"| {name} | not found | ({entry['catcher']}) | - | {entry['max_steps']} | {r.distinct} | {spent:.1f} |",
                  flush=True)
        else:
            print(f"| {name} | {row[0]} | {row[1]} ({entry['catcher']}) | {row[2]} | {entry['max_steps']} | "
                  f"{row[3]} | {spent:.1f} |", flush=True)


def main() -> None:
    """Run the benchmark and print Markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=Bounds().moves, help="moves bound of the rows")
    ap.add_argument("--max-states", type=int, default=Bounds().max_states)
    ap.add_argument("--mode", action="append", choices=KVM_MODES, help="KVM modes (default: all)")
    ap.add_argument("--designs", action="store_true", help="only the shipped designs' rows")
    ap.add_argument("--mutants", action="store_true", help="only the mutant rows")
    ap.add_argument("--mutant", action="append", help="only these mutants")
    args = ap.parse_args()
    modes = args.mode or list(KVM_MODES)
    # a mutant is looked for in the manual modes first: most corpus bugs are in the CLEAR path
    mutant_modes = args.mode or ["manual", "initially_set", "legacy"]
    bounds = Bounds(moves=args.moves, max_states=args.max_states)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"# bench_explore {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; uptime: {load}")
    r, n, s = rate()
    print(f"rate: {r:.0f} distinct states/s (legacy, manual, moves=1: {n} states in {s:.1f} s)\n")
    if not args.mutants and not args.mutant:
        design_rows(bounds, modes)
        print()
    if not args.designs:
        mutant_rows(bounds, mutant_modes, args.mutant)


if __name__ == "__main__":
    main()
