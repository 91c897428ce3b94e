"""The runs of one ``dirtyproof explore`` on several cores, with the serial order's output.

The runs of a portfolio are independent explorations, explored in order, the first violation
ending the exploration. :func:`ordered_outcomes` runs them in up to ``jobs`` worker processes
at once and yields their results in the portfolio's order, stopping after the first violation
in that order: what is printed, the exit status and the trace written are the serial run's.
A run later than a violation already found is never started, and one running is stopped (it
cannot matter); a run earlier than it still decides, since an earlier violation wins.

Each worker is its own process (``fork``), so a run can be stopped alone without breaking the
others (a process pool can only be stopped whole). Workers ignore SIGINT and leave Ctrl-C to
the parent, which waits on their pipes at most :data:`POLL_S` at a time and, on any way out
(Ctrl-C, an error, the first violation), terminates every worker left. A worker names a
counterexample's trace file but does not write it: the parent writes the one it prints.
"""
from __future__ import annotations

import multiprocessing as mp
import sys
from dataclasses import dataclass
from multiprocessing.connection import wait

from .reductions import Reductions

POLL_S = 0.2


@dataclass
class RunJob:
    """One run for a worker: the design (as the user named it, resolved again in the worker),
    the run's label, world and bounds, and the explorer's options."""

    design_spec: str
    label: str
    config: object
    bounds: object
    reductions: Reductions
    order: str
    trace_dir: str | None
    steps: bool


def run_job(job: RunJob, catch: bool = True) -> dict:
    """One run, as a worker does it: ``{"text", "exhaustive", "violated", "trace", "trace_path",
    "error"}`` (picklable; ``error`` is :func:`dirtyproof.cli.failure.classify`'s pair, when
    ``catch``, or ``None``; without ``catch`` an error is raised, as in the serial command).
    Progress goes to stderr, each line prefixed by the run's label."""
    out = {"text": "", "exhaustive": False, "violated": False, "trace": None, "trace_path": None, "error": None}
    try:
        from dirtyproof.cli.common import design_class

        from .run import explore_runs
        cls = design_class(job.design_spec)
        (o,) = list(explore_runs(cls, job.design_spec, [(job.label, job.config, job.bounds)],
                                 job.reductions, order=job.order, trace_dir=job.trace_dir,
                                 steps=job.steps, progress_for=progress_line, save=False))
        out.update(text=o.text, exhaustive=o.result.exhaustive, violated=o.result.violation is not None,
                   trace=o.trace, trace_path=None if o.trace_path is None else str(o.trace_path))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - classified here, where its traceback is
        if not catch:
            raise
        from dirtyproof.cli.failure import classify
        out["error"] = classify(exc)
    return out


def progress_line(label: str):
    """The progress callback of run ``label``: one stderr line, prefixed by the label."""
    def show(res, distinct, queued, depth):
        sys.stderr.write(f"  [{label}] ... {distinct} distinct states, {queued} queued, depth {depth}\n")
    return show


def _child(conn, job: RunJob) -> None:
    """A worker's body: SIGINT left to the parent, one run, its result sent back."""
    from dirtyproof.cli.interrupt import worker_ignores_sigint
    worker_ignores_sigint()
    try:
        conn.send(run_job(job))
    finally:
        conn.close()


def ordered_outcomes(jobs: list[RunJob], processes: int):
    """Yield each job's :func:`run_job` result in the order of ``jobs``, up to and including the
    first with a violation; the runs go on ``processes`` worker processes at once (in this
    process, one after the other, when ``processes`` is 1)."""
    if processes <= 1 or len(jobs) <= 1:
        for job in jobs:
            r = run_job(job, catch=False)
            yield r
            if r["error"] is None and r["violated"]:
                return
        return
    ctx = mp.get_context("fork")
    running: dict = {}                  # job index -> (process, parent end of its pipe)
    results: dict[int, dict] = {}
    limit = len(jobs)                   # jobs from this index on cannot matter (a violation before)
    started = emitted = 0
    try:
        while emitted < limit:
            while len(running) < processes and started < limit:
                # a forked child flushes the streams it inherited when it ends: nothing may be
                # left in them, or it would be printed twice
                sys.stdout.flush()
                sys.stderr.flush()
                here, there = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_child, args=(there, jobs[started]), daemon=True)
                p.start()
                there.close()
                running[started] = (p, here)
                started += 1
            ready = wait([c for _, c in running.values()], timeout=POLL_S)
            for i, (p, c) in list(running.items()):
                if c not in ready or i not in running:
                    continue                # not done, or stopped below for an earlier result
                try:
                    r = c.recv()
                except EOFError:            # the worker died without a word (killed, out of memory)
                    r = {"error": (2, f"explore: the worker of run {jobs[i].label} died (exit {p.exitcode})"),
                         "violated": False}
                c.close()
                p.join()
                del running[i]
                results[i] = r
                if (r["error"] is not None or r["violated"]) and i + 1 < limit:
                    limit = i + 1           # an earlier violation wins: the later runs cannot matter
                    for k in [k for k in running if k >= limit]:
                        _stop(*running.pop(k))
            while emitted in results and emitted < limit:
                yield results[emitted]
                emitted += 1
    finally:
        for p, c in running.values():
            _stop(p, c)


def _stop(p, c) -> None:
    """Terminate a worker and close its pipe."""
    p.terminate()
    p.join(1.0)
    if p.is_alive():
        p.kill()
        p.join()
    c.close()


__all__ = ["RunJob", "run_job", "ordered_outcomes", "progress_line", "POLL_S"]
