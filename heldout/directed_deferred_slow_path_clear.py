"""A hand-built schedule showing that heldout PeriodicDeferredSlowPathClear loses a write (coverage).

    PYTHONPATH=. .venv/bin/python -m heldout.directed_deferred_slow_path_clear
    PYTHONPATH=. .venv/bin/dirtyproof replay heldout/traces/deferred-slow-path-clear-loss.json
"""
import sys
from dirtyproof.impl.config import Config
from dirtyproof.impl.world import World
from dirtyproof.spec import applicable, check_step
import heldout
cls = heldout.PeriodicDeferredSlowPathClear
w = World(Config(), cls); invs = applicable(w.design); choices = []
def st(c, quiet=False):
    lab = w.step(c); choices.append(list(c)); v = check_step(w, invs)
    if not quiet: print(f"#{len(choices)-1:4d} {c} {lab}")
    if v: print("VIOLATION", v); dump(); sys.exit(0)
    return lab
def dump():
    from dirtyproof.checked import run
    from dirtyproof.impl.trace import Trace
    res = run(World(Config(), cls), choices)
    path = Trace.from_result("heldout.second_actor:PeriodicDeferredSlowPathClear", Config(), res).save(
        "heldout/traces/deferred-slow-path-clear-loss.json")
    print(f"{len(choices)} steps; replayed: {res.violation}; trace saved to {path}")
def until(actor, pred, quiet=True, limit=5000):
    for _ in range(limit):
        lab = st([actor, None], quiet)
        if pred(lab): return lab
    raise SystemExit(f"{actor} never reached")
st(["mgmt", "start"]); st(["migration", None]); st(["timer", None])
until("migration", lambda l: "setup done" in l)
for p in range(0, 24): st(["vcpu0", p], True)          # keep the sender busy in ram0 after the exact sync
until("migration", lambda l: "migration_bitmap_sync done" in l)
until("migration", lambda l: "bitmap_mutex released" in l)
print("after exact sync: count", w.mig.dirty_sync_count, "pending", w.mig.migration_dirty_pages, "pss", w.mig.pss_block, w.mig.pss_page)
st(["clock", 5000 - w.clock_ms]); until("timer", lambda l: "BQL released" in l); st(["timer", None])
for p in range(85, 101): st(["vcpu1", p], True)
st(["vcpu0", 80])                                      # P = 80 (odd0, slow path): protected, faults into L1
st(["clock", 10000 - w.clock_ms])
until("timer", lambda l: "deferred" in l and "released" in l, quiet=False)
until("migration", lambda l: l.startswith("read page 80"), quiet=False)
st(["vcpu0", 80])                                      # after the read: L1 already set, no fault
until("timer", lambda l: False, quiet=False, limit=40)
