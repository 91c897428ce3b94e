"""Time of every obligation of every shipped design and configuration, and the total.

Targets: each obligation < 2 s, all proofs < 30 s. Counterexample searches are timed apart."""
from __future__ import annotations

import sys
import time

from dirtyproof.impl.designs import DESIGNS
from dirtyproof.proofs.bmc import search
from dirtyproof.proofs.counting import prove_counting
from dirtyproof.proofs.registry import encoding_for
from dirtyproof.proofs.obligations import prove
from dirtyproof.proofs.runner import CONFIGS
from dirtyproof.proofs.solver import QueryRunner


def main() -> int:
    """Print one line per obligation, then totals; exit 1 if a target is missed."""
    t0 = time.perf_counter()
    worst, ok = 0.0, True
    for name, cls in DESIGNS.items():
        enc = encoding_for(cls)
        for cfg in CONFIGS:
            mode, geo = cfg.split("/")
            for o in prove(enc, mode, geo, QueryRunner()):
                worst = max(worst, o.seconds)
                print(f"{name:14s} {cfg:22s} {o.name:12s} {o.verdict:9s} {o.seconds:6.3f} s")
    total = time.perf_counter() - t0
    r = QueryRunner()
    for lemma, status, secs in prove_counting(r):
        print(f"counting       {lemma:34s} {status:9s} {secs:6.3f} s")
    t1 = time.perf_counter()
    b = search(encoding_for(DESIGNS["background-v1"]), "legacy", "mixed", fast_values=(False,))
    print(f"bmc background-v1 legacy/mixed: {b.status} at depth {b.depth}, {b.explored} states, "
          f"{time.perf_counter() - t1:.1f} s")
    ok = worst < 2.0 and total < 30.0
    print(f"all obligations: {total:.1f} s (target < 30 s); slowest obligation {worst:.2f} s (target < 2 s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
