"""Every engine on every held-out design, with fixed seeds and budgets, through the public CLI and API.

    PYTHONPATH=. .venv/bin/python -m heldout2.measure [--json OUT.jsonl] [NAME ...]

Engines, each with a fixed budget (flags below; the defaults are the recorded BEFORE figures):

- ``run``: plain seeded random runs, exactly what ``dirtyproof run --design D --seed S`` does
  (2000 free-running steps, at most one cancel), seeds 0..N-1, each in every KVM mode, stopping at
  the first property violation (in-process, through ``dirtyproof.impl``);
- ``hunt``: ``dirtyproof hunt --design D --schedules N --examples M`` (profile ``ci``: derandomized);
- ``explore``: ``dirtyproof explore --design D --kvm-mode K --max-states N --quiet`` with the
  explorer's default bounds, once per KVM mode, the state budget split evenly between the modes;
- ``check``: ``dirtyproof check --design D --hunt-budget S --json F``.

Every CLI call also has a wall-clock cap (a cut call is reported as ``cap``). Each cell gives
the property found (``-`` for none), and the engine's wall and CPU seconds; rules the engine
reported are listed in the JSON. A correct design (``breaks = None``) with a property is a false
alarm, printed as ``FALSE ALARM``. HELD OUT: do not tune a search on these numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dirtyproof.impl.config import KVM_MODES, Config
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.impl.world import World
try:  # main from f9af6b5 on: the checked runner is dirtyproof.checked.run
    from dirtyproof.checked import run
except ImportError:  # main at a4ac7e1, where this set was written and measured
    from dirtyproof.impl.scheduler import run

from . import HELD_OUT

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("run", "hunt", "explore", "check")


def spec_of(cls) -> str:
    """The CLI name of a held-out class: ``heldout2.module:Class``."""
    return f"{cls.__module__}:{cls.__name__}"


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cli(args: list[str], cap: float) -> tuple[int | None, str, float, float]:
    """Run ``dirtyproof ARGS`` from the repository root; (exit status or None if capped, stdout,
    wall seconds, CPU seconds)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0, c0 = time.perf_counter(), _children_cpu()
    try:
        p = subprocess.run([sys.executable, "-m", "dirtyproof.cli", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=cap)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as exc:
        rc, out = None, (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    return rc, out, time.perf_counter() - t0, _children_cpu() - c0


def cell(found, wall: float, cpu: float, **extra) -> dict:
    """One table cell: the property found (or None), the times, and what else the engine said."""
    return {"found": found, "wall": round(wall, 1), "cpu": round(cpu, 1), **extra}


def engine_run(cls, a) -> dict:
    """Plain seeded runs: seed-major over every KVM mode, first property violation wins."""
    t0, c0 = time.perf_counter(), time.process_time()
    tried = 0
    for seed in range(a.seeds):
        for mode in KVM_MODES:
            tried += 1
            res = run(World(Config(kvm_mode=mode), cls), RandomScheduler(seed, a.steps, cancels=1),
                      keep_log=False, extend=True)
            if not res.ok:
                return cell(res.violation.invariant, time.perf_counter() - t0, time.process_time() - c0,
                            at=f"seed {seed} {mode}", runs=tried, lost=bool(res.lost_write))
    return cell(None, time.perf_counter() - t0, time.process_time() - c0, runs=tried)


def engine_hunt(cls, a, trace_dir: str) -> dict:
    """``dirtyproof hunt`` with fixed schedule and example counts."""
    rc, out, wall, cpu = cli(["hunt", "--design", spec_of(cls), "--schedules", str(a.schedules),
                              "--examples", str(a.examples), "--trace-dir", trace_dir], a.cap)
    if rc is None:
        return cell(None, wall, cpu, capped=True)
    m = re.search(r"caught by (\S+) in (\d+) steps", out)
    rules = sorted(set(re.findall(r"rule (\S+) broken", out)))
    return cell(m.group(1) if m else None, wall, cpu, rules=rules, rc=rc)


def engine_explore(cls, a, trace_dir: str) -> dict:
    """``dirtyproof explore`` per KVM mode with default bounds and a state budget."""
    wall = cpu = 0.0
    found, at, rules, capped = None, None, set(), False
    per_mode = max(1, a.states // len(KVM_MODES))
    for mode in KVM_MODES:
        rc, out, w_, c_ = cli(["explore", "--design", spec_of(cls), "--kvm-mode", mode, "--max-states",
                               str(per_mode), "--quiet", "--trace-dir", trace_dir], a.cap)
        wall, cpu = wall + w_, cpu + c_
        capped = capped or rc is None
        rules |= set(re.findall(r"rule (\S+) broken", out))
        m = re.search(r"VIOLATION of (\S+) after (\d+) steps", out)
        if m:
            found, at = m.group(1), f"{mode}, {m.group(2)} steps"
            break
    return cell(found, wall, cpu, at=at, rules=sorted(rules), capped=capped)


def engine_check(cls, a, trace_dir: str) -> dict:
    """``dirtyproof check --design`` with a hunt budget; the engines that said unsafe, from its JSON."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        js = Path(tmp) / "check.json"
        rc, out, wall, cpu = cli(["check", "--design", spec_of(cls), "--hunt-budget", str(a.check_hunt),
                                  "--json", str(js), "--trace-dir", trace_dir], a.cap)
        if rc is None or not js.exists():
            return cell(None, wall, cpu, capped=rc is None, rc=rc)
        rows = json.loads(js.read_text())["results"]
    # the explore row says "unsafe (PROPERTY, N steps)", the seeded runs' "violation (PROPERTY,
    # seed S)", the others "unsafe" with the property in their detail (until s14 only the last
    # form was counted: the explorer's and the runs' finds went unreported)
    unsafe = [r for r in rows if str(r["got"]).startswith(("unsafe", "violation")) and r["engine"] != "verdict"]
    props, found = [], None
    for r in unsafe:
        m = (re.match(r"(?:unsafe|violation) \((\S+), ", str(r["got"]))
             or re.search(r"(\S+) violated at step", r.get("detail") or ""))
        props.append(f"{r['engine']}:{m.group(1) if m else 'unsafe'}")
        if m and found is None:
            found = m.group(1)
    if unsafe and found is None:        # an engine said unsafe without naming a property (the counting lemmas)
        found = f"unsafe ({unsafe[0]['engine']})"
    return cell(found, wall, cpu, engines=props, rc=rc)


def show(found, c: dict, correct: bool) -> str:
    """A cell as the table prints it."""
    t = f"{c['wall']}s/{c['cpu']}c"
    if c.get("capped") and not found:
        return f"cap ({t})"
    if not found:
        return f"- ({t})"
    return f"{'FALSE ALARM ' if correct else ''}{found} ({t})"


def main(argv=None, held_out=None, label: str = "heldout2") -> int:
    """Measure every held-out design (or those named) with every engine; print the table.

    ``held_out`` (default: this package's ``HELD_OUT``) and ``label`` let another held-out
    package (``heldout3.measure``) reuse the same engines and budgets."""
    held_out = HELD_OUT if held_out is None else held_out
    p = argparse.ArgumentParser(description=f"every engine on every held-out design ({label})")
    p.add_argument("--seeds", type=int, default=4, help="plain runs: seeds 0..N-1, each in every KVM mode")
    p.add_argument("--steps", type=int, default=2000, help="plain runs: free-running steps (dirtyproof run's default)")
    p.add_argument("--schedules", type=int, default=12, help="hunt: swarm schedules")
    p.add_argument("--examples", type=int, default=5, help="hunt: Hypothesis examples")
    p.add_argument("--states", type=int, default=3000, help="explore: distinct states, split over the KVM modes")
    p.add_argument("--check-hunt", type=int, default=2, help="check: --hunt-budget seconds")
    p.add_argument("--cap", type=float, default=120.0, help="wall-clock cap of one CLI call, seconds")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--json", help="also write one JSON line per design here")
    p.add_argument("names", nargs="*", help="class names or design names (default: all)")
    a = p.parse_args(argv)
    engines = a.engines.split(",")
    out = open(a.json, "w") if a.json else None
    t_all = time.perf_counter()
    print(f"# {label} measure: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; budgets: run {a.seeds} seeds x {len(KVM_MODES)} modes, "
          f"hunt {a.schedules} schedules + {a.examples} examples, explore {a.states} states, "
          f"check hunt {a.check_hunt} s; cells are property (wall s / CPU s)", flush=True)
    print("| design | expected | " + " | ".join(engines) + " |")
    print("|---|---|" + "---|" * len(engines), flush=True)
    with tempfile.TemporaryDirectory(dir="/tmp") as trace_dir:
        for cls in held_out:
            if a.names and cls.__name__ not in a.names and cls.name not in a.names:
                continue
            correct = cls.breaks is None
            row = {"design": spec_of(cls), "expected": cls.breaks or "safe"}
            for e in engines:
                if e == "run":
                    row[e] = engine_run(cls, a)
                elif e == "hunt":
                    row[e] = engine_hunt(cls, a, trace_dir)
                elif e == "explore":
                    row[e] = engine_explore(cls, a, trace_dir)
                elif e == "check":
                    row[e] = engine_check(cls, a, trace_dir)
                else:
                    print(f"unknown engine {e!r}", file=sys.stderr)
                    return 2
            print(f"| {cls.__name__} | {row['expected']} | "
                  + " | ".join(show(row[e]["found"], row[e], correct) for e in engines) + " |", flush=True)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
    print(f"# total {time.perf_counter() - t_all:.0f} s wall, load now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
