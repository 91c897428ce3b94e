"""Observe the user designs on today's code, black-box, with the public scheduler and checks.

For every design, KVM mode, geometry and seed, two runs of the same random schedule
(``RandomScheduler(seed, steps)``, the schedule ``dirtyproof run`` uses):

- ``all``: every invariant that applies, stopping at the first violation (what ``dirtyproof run``
  reports today);
- ``prop``: only the properties that say a page or a counter is really wrong (``no-loss`` at
  completion, ``dirty-pages-count``, ``period-counter``; lock order and ``progress`` are always
  checked by the runner), so a broken design shows the lost write itself and a correct design
  shows whether an ``all`` violation was a false alarm.

Usage (from the worktree root)::

    PYTHONPATH=. .venv/bin/python -m tests.user_designs.observe [--seeds 0-9] [--steps 3000]
        [--design NAME] [--modes legacy,manual,initially_set] [--geometries mixed,aligned,unaligned]

Prints one line per design and configuration: the first violation per check set and the seeds
that hit it.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

from dirtyproof.impl.config import Config
from dirtyproof.impl.geometry import Geometry
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.checked import run
from dirtyproof.impl.world import World
from dirtyproof.spec import BY_ID, applicable

from . import ALL

PROPERTIES = ("no-loss", "dirty-pages-count", "period-counter")
GEOMETRIES = {
    "mixed": lambda: Geometry.simple(aligned=1, unaligned=1, pages=64, shift=2),
    "aligned": lambda: Geometry.simple(aligned=2, unaligned=0, pages=64, shift=2),
    "unaligned": lambda: Geometry.simple(aligned=0, unaligned=2, pages=64, shift=2),
}


def seeds_of(text: str) -> list[int]:
    """``0-9`` or ``1,4,7``."""
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


class AvoidPage(RandomScheduler):
    """The seeded schedule, except that once ``avoid`` is set, guest and device writes to that
    page become 10 ms clock steps: a lost write is then not healed by a later write."""

    avoid: int | None = None

    def next_choice(self, w):
        ch = super().next_choice(w)
        if (self.avoid is not None and ch is not None and ch[1] == self.avoid
                and (ch[0] == "device" or ch[0].startswith("vcpu"))):
            return ["clock", 10]
        return ch


def extend(cls, mode: str, geo: str, seed: int, steps: int, cancels: int = 1):
    """Run every check until the first violation on a page (say ``coverage``); then go on to
    completion with only ``no-loss`` checked and no more writes to that page. Returns
    (first violation, its step, the no-loss violation or None, the steps in all)."""
    cfg = Config(geometry=GEOMETRIES[geo](), kvm_mode=mode)
    w = World(cfg, cls)
    sched = AvoidPage(seed, steps, cancels=cancels)
    first = run(w, sched, keep_log=False)
    v = first.violation
    if v is None or v.page is None or w.migration_done():
        return v, first.violation_step, None, first.steps
    sched.avoid = v.page
    rest = run(w, sched, invariants=[BY_ID["no-loss"]], keep_log=False)
    return v, first.violation_step, rest.violation, first.steps + rest.steps


def one(cls, mode: str, geo: str, seed: int, steps: int, props_only: bool, cancels: int = 1,
        props: tuple = PROPERTIES):
    """One run; returns (invariant or None, step, message, completed)."""
    cfg = Config(geometry=GEOMETRIES[geo](), kvm_mode=mode)
    w = World(cfg, cls)
    invs = [BY_ID[i] for i in props if i in BY_ID and BY_ID[i] in applicable(w.design)] if props_only else None
    res = run(w, RandomScheduler(seed, steps, cancels=cancels), invariants=invs, keep_log=False)
    v = res.violation
    return (v.invariant if v else None, res.violation_step, v.message if v else "", res.completed)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-9")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--cancels", type=int, default=1)
    p.add_argument("--design", action="append", help="design name (repeatable; default: all)")
    p.add_argument("--modes", default="legacy,manual,initially_set")
    p.add_argument("--geometries", default="mixed,aligned,unaligned")
    p.add_argument("--only", choices=("all", "prop", "both"), default="both")
    p.add_argument("--props", default=",".join(PROPERTIES), help="the properties of the 'prop' runs")
    p.add_argument("--extend", action="store_true",
                   help="after the first violation on a page, run on to completion without writes to "
                        "that page, checking no-loss only (shows whether the write is really lost)")
    args = p.parse_args(argv)
    seeds = seeds_of(args.seeds)
    designs = [c for c in ALL if not args.design or c.name in args.design]
    props_checked = tuple(args.props.split(","))
    if args.extend:
        for cls in designs:
            print(f"== {cls.name}  expected {cls.expected}", flush=True)
            for mode in args.modes.split(","):
                for geo in args.geometries.split(","):
                    for seed in seeds:
                        v, step, loss, total = extend(cls, mode, geo, seed, args.steps, args.cancels)
                        if v is None:
                            continue
                        print(f"  {mode:13s} {geo:9s} seed {seed:<4d} first {v.invariant} at step {step}: "
                              f"{v.message}", flush=True)
                        if v.invariant == "no-loss":
                            print("      (already at completion: the write is lost)", flush=True)
                        else:
                            print(f"      extended to step {total}: "
                                  f"{loss if loss is not None else 'no lost write at completion'}", flush=True)
        return 0
    for cls in designs:
        t0 = time.perf_counter()
        want = cls.expected + (f" ({cls.breaks})" if cls.expected == "unsafe" else "")
        print(f"== {cls.name}  expected {want}", flush=True)
        for mode in args.modes.split(","):
            for geo in args.geometries.split(","):
                for label, props in (("all", False), ("prop", True)):
                    if args.only != "both" and args.only != label:
                        continue
                    hits = defaultdict(list)
                    example = {}
                    for seed in seeds:
                        inv, step, msg, _ = one(cls, mode, geo, seed, args.steps, props, args.cancels, props_checked)
                        key = inv or "ok"
                        hits[key].append(seed)
                        if inv and key not in example:
                            example[key] = f"seed {seed} step {step}: {msg}"
                    summary = "; ".join(f"{k}: seeds {','.join(map(str, v))}" for k, v in sorted(hits.items()))
                    print(f"  {mode:13s} {geo:9s} {label:4s} {summary}", flush=True)
                    for k, e in example.items():
                        print(f"      e.g. {k} {e}", flush=True)
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
