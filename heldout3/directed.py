"""Directed, replayable ground truth for the third set's designs that plain seeded runs did not
reach (150 seeds in each KVM mode).

    PYTHONPATH=. .venv/bin/python -m heldout3.directed            # build, check, print the verdicts
    PYTHONPATH=. .venv/bin/python -m heldout3.directed --save     # also (re)write heldout3/traces/*.json

The schedule is built step by step on a live world with heldout2's :class:`Driver` (the world's
public choices only) and checked again from a fresh world with every check on; the saved trace
replays with ``dirtyproof replay``. HELD OUT: these scenarios name the bug's mechanism; never tune
a search on them.
"""
from __future__ import annotations

import sys
from pathlib import Path

from dirtyproof.impl.config import Config
from dirtyproof.impl.steps import DELIVER, ITERATE_DONE, KVM_CLEAR, SLEEP, SYNC_DONE, TIMER_RETURN
from heldout2 import directed as directed2
from heldout2.directed import Driver, ScenarioError, _through_first_exact_sync

from .timer_races import Qemu110BlockClearAfterMutex

TRACES = Path(__file__).parent / "traces"


def block_clear_after_mutex() -> tuple[type, Config, list, str]:
    """The timer's sync moves slow-path page P into ``bmap`` and drops ``bitmap_mutex``; the sender
    reads P, the guest rewrites it, and the timer's merged block CLEAR erases the rewrite's mark."""
    cls, cfg = Qemu110BlockClearAfterMutex, Config(kvm_mode="manual")
    d = Driver(cfg, cls)
    odd = d.w.blocks[1]
    if odd.fast_path:
        raise ScenarioError("block 1 is on the fast path: no slow-path block to race on")
    victim = odd.offset + 10
    pending = tuple(p for p in range(odd.offset, odd.offset + 24) if p != victim)
    _through_first_exact_sync(d, pending)
    d.until_kind("migration", ITERATE_DONE)        # one burst (8 pages before the victim), mutex free
    d.clock_to(5000)
    d.until_kind("timer", TIMER_RETURN)            # tick 1 remembers dirty_sync_count (2)
    d.until_kind("timer", SLEEP)
    d.write(victim)                                # protected since the setup: faults, L1 set
    d.clock_to(10000)
    d.until_kind("timer", SYNC_DONE)               # tick 2 synced: victim in bmap, mutex free, CLEAR owed
    if not odd.bmap.test(victim - odd.offset):
        raise ScenarioError("the timer's sync did not move the victim into bmap")
    d.until_kind("migration", DELIVER, page=victim)
    d.write(victim)                                # unprotected since the GET: no fault, L1 stays set
    d.until_kind("timer", KVM_CLEAR)               # the merged clear, mask the fetched copy (victim in it)
    return cls, cfg, d.choices, "qemu110-block-clear-after-mutex-loss.json"


SCENARIOS = (block_clear_after_mutex,)


def main(argv=None) -> int:
    """heldout2's directed-trace driver on this set's scenarios and trace folder."""
    return directed2.main(argv, scenarios=SCENARIOS, traces=TRACES, label="heldout3")


if __name__ == "__main__":
    sys.exit(main())
