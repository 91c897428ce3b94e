"""One Z3 query with a time limit: ``unknown`` and timeouts are failures, never passes; every
query can be written as SMT-LIB 2 for another solver."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import z3

DEFAULT_TIMEOUT_MS = 5000


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
        res = QueryResult(name, str(r), dt, s.model() if r == z3.sat else None,
                          s.reason_unknown() if r == z3.unknown else "")
        self.log.append(res)
        return res
