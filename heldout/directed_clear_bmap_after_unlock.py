"""A hand-built schedule showing that heldout PeriodicClearBmapAfterUnlock loses a write (coverage),
not only breaks clear-before-read, which is all that plain random runs report.

    PYTHONPATH=. .venv/bin/python -m heldout.directed_clear_bmap_after_unlock
    PYTHONPATH=. .venv/bin/dirtyproof replay heldout/traces/clear-bmap-after-unlock-loss.json

Writes the trace; the schedule is built step by step from the scenario in the class docstring."""
import json, sys
from dirtyproof.impl.config import Config
from dirtyproof.impl.world import World
from dirtyproof.spec import applicable, check_step
import heldout
cls = heldout.PeriodicClearBmapAfterUnlock
w = World(Config(), cls)
invs = applicable(w.design)
choices = []
def st(c, quiet=False):
    lab = w.step(c); choices.append(list(c))
    v = check_step(w, invs)
    if not quiet: print(f"#{len(choices)-1:4d} {c} {lab}")
    if v: print("VIOLATION", v); dump(); sys.exit(0)
    return lab
def dump():
    from dirtyproof.checked import run
    from dirtyproof.impl.trace import Trace
    res = run(World(Config(), cls), choices)
    path = Trace.from_result("heldout.second_actor:PeriodicClearBmapAfterUnlock", Config(), res).save(
        "heldout/traces/clear-bmap-after-unlock-loss.json")
    print(f"{len(choices)} steps; replayed: {res.violation}; trace saved to {path}")
def until(actor, pred, quiet=True, limit=5000):
    for _ in range(limit):
        lab = st([actor, None], quiet)
        if pred(lab): return lab
    raise SystemExit(f"{actor} never reached")
st(["mgmt", "start"])
st(["migration", None])
st(["timer", None])   # the timer is armed: sleep until 5000 ms
until("migration", lambda l: "setup done" in l)
for p in [62] + list(range(70, 90)):
    st(["vcpu0", p], True)
# first round: send everything, then the exact sync (count 2)
until("migration", lambda l: "migration_bitmap_sync done" in l)
print("after exact sync: count", w.mig.dirty_sync_count, "pending", w.mig.migration_dirty_pages)
# send until page 62 has been delivered (its chunk 15 taken and CLEARed), stop at the burst's end
until("migration", lambda l: "deliver page 62" in l)
until("migration", lambda l: "bitmap_mutex released" in l)
print("pending", w.mig.migration_dirty_pages, "pss", w.mig.pss_block, w.mig.pss_page, "clear_bmap ram0", w.blocks[0].clear_bmap.to_list())
# timer ticks: 5000 (prev := 2), 10000 (sync)
st(["clock", 5000 - w.clock_ms]); until("timer", lambda l: "BQL released" in l); st(["timer", None])
st(["vcpu0", 60]); st(["vcpu0", 61])
for p in range(20): st(["vcpu1", p], True)         # P=60 and Q=61 written: fault, L1
st(["clock", 10000 - w.clock_ms])
until("timer", lambda l: "not yet set" in l, quiet=False)
print("gap: bmap ram0", [p for p in w.blocks[0].bmap.to_list()], "clear_bmap ram0", w.blocks[0].clear_bmap.to_list())
until("migration", lambda l: l.startswith("read page 60"), quiet=False)
st(["vcpu0", 60])                             # v after the read: L1 already set, no fault
st(["timer", None])                           # clear_bmap set now
until("migration", lambda l: False, quiet=False, limit=40)
dump()
