"""What an exploration prints, in the manner of TLC, and the trace of its counterexample."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dirtyproof.impl.trace import Trace

from .bounds import describe_bounds, describe_world
from .engine import Result

TRACE_DIR_ENV = "DIRTYPROOF_TRACE_DIR"
DEFAULT_TRACE_DIR = ".dirtyproof/traces"


def bounds_line(res: Result) -> str:
    """The bounds B of "exhaustive within bounds B": world, budgets and reductions."""
    dl = f"; {res.deadlines.describe()}" if res.deadlines is not None else ""
    return (f"world {describe_world(res.config)}; {describe_bounds(res.bounds)}{dl}; "
            f"reductions {res.reductions.describe()}")


def verdict_line(res: Result) -> str:
    """The one-line verdict."""
    if res.violation is not None:
        v = res.violation
        if res.pump is not None:
            # a lasso found on the paths a bound cut (explore/converge.py): the cheapest found
            # there, not a shortest counterexample within an exhausted bound
            return (f"VIOLATION of {v.invariant} after {len(res.path)} steps (a lasso: {res.pump.prefix} steps, "
                    f"then one turn of {len(res.pump.turn)} that repeats): {v.message}")
        return f"VIOLATION of {v.invariant} after {len(res.path)} steps (shortest within the bounds): {v.message}"
    if res.exhaustive:
        return "no violation: exhaustive within bounds B"
    why = f"{res.truncated} state(s) cut at max_depth" if res.truncated else "stopped at max_states"
    return f"no violation found, NOT exhaustive ({why}): raise the bound to finish"


def rule_lines(res: Result) -> list[str]:
    """One line per rule some explored transition broke (a rule, not a verdict)."""
    return [f"rule {rid} broken after {len(path)} steps: {v.message} (a rule of QEMU's, no lost write shown)"
            for rid, (v, path) in sorted(res.rules.items())]


def summary(res: Result) -> list[str]:
    """TLC's summary: states generated, distinct states, depth, time, and the verdict."""
    rate = res.distinct / res.seconds if res.seconds > 0 else 0.0
    return [f"{res.design}: B = {bounds_line(res)}",
            f"  {res.generated} states generated, {res.distinct} distinct states"
            f"{f' ({res.subsumed} more subsumed)' if res.subsumed else ''}, depth {res.depth}, "
            f"{res.seconds:.2f} s ({rate:.0f} distinct/s), {res.completed_paths} completed end state(s)"
            + (f"; time includes {res.dropped} distinct states of {res.deadlines.restarts} run(s) started "
               f"again on a new read" if res.dropped else ""),
            f"  {verdict_line(res)}"] + [f"  {line}" for line in rule_lines(res)] + (
        [f"  (a search with budget subsumption, {res.redone} distinct states, found a state from which no "
         f"path seemed to complete: decided by this search without it, time included)"] if res.redone else [])


def trace_of(res: Result, design_spec: str) -> Trace:
    """The counterexample as a replayable trace (impl/trace.py format)."""
    v = res.violation
    viol = {"invariant": v.invariant, "step": len(res.path) - 1, "page": v.page, "message": v.message}
    return Trace(design_spec, res.config, [list(c) for c in res.path], None, None, viol)


def trace_file(res: Result, design_spec: str, trace_dir: str | None = None) -> tuple[Trace, Path]:
    """The counterexample's trace and the file :func:`save_trace` writes it to (named by its
    content, so a run in a worker process can name it and leave the writing to its parent)."""
    tr = trace_of(res, design_spec)
    digest = hashlib.sha1(json.dumps(tr.to_json(), sort_keys=True).encode()).hexdigest()[:8]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in design_spec)
    folder = Path(trace_dir or os.environ.get(TRACE_DIR_ENV) or DEFAULT_TRACE_DIR)
    name = f"{safe}-{res.config.kvm_mode}-explore-{res.violation.invariant}-{len(res.path)}steps-{digest}.json"
    return tr, folder / name


def save_trace(res: Result, design_spec: str, trace_dir: str | None = None) -> Path:
    """Save the counterexample where the hunt saves its own (``$DIRTYPROOF_TRACE_DIR``)."""
    tr, path = trace_file(res, design_spec, trace_dir)
    return tr.save(path)


def step_lines(res: Result, design_cls) -> list[str]:
    """The counterexample as the hunt prints it: one line per step with the layers it changed."""
    from dirtyproof.hunt.report import step_list
    return step_list(design_cls, res.config, res.path)


__all__ = ["summary", "verdict_line", "bounds_line", "trace_of", "trace_file", "save_trace", "step_lines"]
