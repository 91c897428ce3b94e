"""Held-out set 2, measured once: the default bound's two new entries (two-writes/manual,
write-clock/legacy, added in s9-explore without looking at heldout2) on each broken design."""
import json, os, sys, time, resource
from dirtyproof.explore.portfolio import default_portfolio
from dirtyproof.explore.run import portfolio_runs
from dirtyproof.explore.verdict import judge
from heldout2 import BROKEN, CORRECT
entries = [e for e in default_portfolio() if e.name in ("two-writes", "write-clock")]
runs = portfolio_runs(entries)
out = open(sys.argv[1], "w")
for cls in BROKEN + CORRECT:
    spec = f"{cls.__module__}:{cls.__name__}"
    for r in runs:
        t, c = time.perf_counter(), time.process_time()
        try:
            j = judge(cls, spec, trace_dir="/tmp/lead3/h2/tr", runs=[r])
            res = {"verdict": j.verdict, "invariant": j.invariant, "steps": j.steps}
        except Exception as exc:
            res = {"error": repr(exc)[:200]}
        rec = {"design": cls.__name__, "breaks": getattr(cls, "breaks", None), "run": r[0], **res,
               "wall": round(time.perf_counter() - t, 1), "cpu": round(time.process_time() - c, 1),
               "load": os.getloadavg()[0]}
        print(json.dumps(rec), file=out, flush=True)
        print(json.dumps(rec), flush=True)
