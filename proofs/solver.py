"""One Z3 query with a time limit: ``unknown`` and timeouts are failures, never passes; every
query can be written as SMT-LIB 2 for another solver.

Ctrl-C during a query stops it and raises ``KeyboardInterrupt``, never an ``unknown`` answer.
Z3's own SIGINT handling is off (``ctrl_c=False``): it swaps the process's SIGINT handler in and
out around each check, and turned Ctrl-C into an "unknown (interrupted from keyboard)"
obligation. Python's handler cannot run while the main thread is inside Z3, so the command
line's watcher thread (:mod:`dirtyproof.cli.interrupt`) calls :func:`interrupt_running`, and an
answer "interrupted"/"canceled" before the time limit is turned back into ``KeyboardInterrupt``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import z3

DEFAULT_TIMEOUT_MS = 5000


_running: list = []     # the context of the query being checked, for interrupt_running()
# Set by interrupt_running(): ``Z3_interrupt`` is not sticky (an interrupt that comes before Z3
# listens is lost and the query runs to its limit), so every query looks at this flag too.
_stop = threading.Event()


def interrupt_running() -> None:
    """Stop the query being checked, if any, and every later one (``Z3_interrupt``: safe from
    another thread; the command line's Ctrl-C watcher calls it, :mod:`dirtyproof.cli.interrupt`)."""
    _stop.set()
    for ctx in list(_running):
        ctx.interrupt()


def clear_interrupt() -> None:
    """Let queries run again (a new command in the same process)."""
    _stop.clear()


def _check_interruptibly(s, name: str):
    """``s.check()``, registered so that a Ctrl-C watcher thread can interrupt it; a stop asked
    before it is registered is seen here."""
    _running.append(s.ctx)
    try:
        if _stop.is_set():
            raise KeyboardInterrupt(f"Z3 query {name} not started: interrupted")
        return s.check()
    finally:
        _running.remove(s.ctx)


def _interrupted(reason: str, seconds: float, timeout_ms: int) -> bool:
    """Whether Z3's ``reason_unknown`` says the query was stopped by a signal, not by its limits
    (a "canceled" well before the time limit is a signal too)."""
    reason = reason.lower()
    if "interrupted" in reason:
        return True
    return ("canceled" in reason or "cancelled" in reason) and seconds < 0.9 * timeout_ms / 1000


@dataclass
class QueryResult:
    """The outcome of one query: ``sat``/``unsat``/``unknown``, seconds, and the model if sat."""

    name: str
    status: str
    seconds: float
    model: object = None
    reason: str = ""


@dataclass
class QueryRunner:
    """Runs queries with a per-query timeout and optionally dumps each as SMT-LIB 2."""

    timeout_ms: int = DEFAULT_TIMEOUT_MS
    smt2_dir: Path | None = None
    log: list = field(default_factory=list)

    def check(self, name: str, *assertions) -> QueryResult:
        """Check the conjunction of ``assertions``."""
        s = z3.Solver()
        s.set("timeout", self.timeout_ms)
        s.set("ctrl_c", False)
        s.add(*assertions)
        if self.smt2_dir is not None:
            self.smt2_dir.mkdir(parents=True, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            (self.smt2_dir / f"{len(self.log):04d}-{safe}.smt2").write_text(s.to_smt2())
        t = time.perf_counter()
        r = _check_interruptibly(s, name)
        dt = time.perf_counter() - t
        if _stop.is_set() or (r == z3.unknown and _interrupted(s.reason_unknown(), dt, self.timeout_ms)):
            raise KeyboardInterrupt(f"Z3 query {name} interrupted")
        res = QueryResult(name, str(r), dt, s.model() if r == z3.sat else None,
                          s.reason_unknown() if r == z3.unknown else "")
        self.log.append(res)
        return res
