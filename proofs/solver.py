"""One Z3 query with a time limit: ``unknown`` and timeouts are failures, never passes; every
query can be written as SMT-LIB 2 for another solver.

Z3 takes SIGINT over while it checks (it cancels the query, which then answers ``unknown``
"interrupted from keyboard" or "canceled"), so Python never sees the Ctrl-C: :meth:`check`
turns that answer back into ``KeyboardInterrupt`` so an interrupted query stops the program
instead of becoming an "unknown" obligation (or, worse, being searched around)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import z3

DEFAULT_TIMEOUT_MS = 5000


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
        s.add(*assertions)
        if self.smt2_dir is not None:
            self.smt2_dir.mkdir(parents=True, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            (self.smt2_dir / f"{len(self.log):04d}-{safe}.smt2").write_text(s.to_smt2())
        t = time.perf_counter()
        r = s.check()
        dt = time.perf_counter() - t
        if r == z3.unknown and _interrupted(s.reason_unknown(), dt, self.timeout_ms):
            raise KeyboardInterrupt(f"Z3 query {name} interrupted")
        res = QueryResult(name, str(r), dt, s.model() if r == z3.sat else None,
                          s.reason_unknown() if r == z3.unknown else "")
        self.log.append(res)
        return res
