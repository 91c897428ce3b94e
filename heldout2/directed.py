"""Directed, replayable ground truth for the held-out designs that plain random runs rarely reach.

    PYTHONPATH=. .venv/bin/python -m heldout2.directed            # build, check, print the verdicts
    PYTHONPATH=. .venv/bin/python -m heldout2.directed --save     # also (re)write heldout2/traces/*.json

Each scenario is a schedule built step by step on a live world, through the world's public
choices only (``[actor, arg]``: a thread step, a vCPU or device write, a clock move, a management
command), by a :class:`Driver` that steps a thread until its last step record has a given kind or
a predicate holds. The schedule is then run again from a fresh world with every check on
(``dirtyproof.impl.scheduler.run``, extended to completion after a coverage violation), and what
that checked run reports is the verdict; the saved trace replays with ``dirtyproof replay``.
HELD OUT: these scenarios name the mechanism of each bug; never tune a search on them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dirtyproof.impl.config import Config
from dirtyproof.impl.steps import (CHUNK_TAKEN, CLEAR_BMAP_SET, DELIVER, ITERATE_DONE, L2_XCHG, READ, SLEEP,
                                   SYNC_DONE, TIMER_RETURN)
from dirtyproof.impl.trace import Trace
from dirtyproof.impl.world import World
try:  # main from f9af6b5 on: the checked runner is dirtyproof.checked.run
    from dirtyproof.checked import run
except ImportError:  # main at a4ac7e1, where this set was written and measured
    from dirtyproof.impl.scheduler import run

from .lock_scope import PeriodicSyncYieldsMutexPerWord
from .second_actor import PeriodicTimerPreClearsChunks

TRACES = Path(__file__).parent / "traces"
MAX_STEPS = 20000     # a guard: a scenario that does not reach its target is a broken scenario


class ScenarioError(RuntimeError):
    """A scenario did not reach the state it steers for (the design or the model changed)."""


class Driver:
    """Builds a schedule on a live world: every choice is applied and recorded."""

    def __init__(self, config: Config, design) -> None:
        self.config = config
        self.design = design
        self.w = World(config, design)
        self.choices: list = []

    def do(self, who: str, arg=None) -> str:
        """Apply one choice and record it."""
        choice = [who, arg]
        label = self.w.step(choice)
        self.choices.append(choice)
        return label

    def until(self, thread: str, pred, what: str) -> None:
        """Step ``thread`` until ``pred(world, last step record)`` holds after one of its steps."""
        for _ in range(MAX_STEPS):
            if thread not in self.w.runnable_threads():
                raise ScenarioError(f"{thread} cannot step while steering for {what}")
            self.do(thread)
            if pred(self.w, self.w.actors[thread].step):
                return
        raise ScenarioError(f"{thread} never reached {what}")

    def until_kind(self, thread: str, kind: str, **fields) -> None:
        """Step ``thread`` until its last step record has ``kind`` (and the given fields)."""
        def pred(w, rec):
            return rec is not None and rec.kind == kind and all(getattr(rec, k) == v for k, v in fields.items())
        self.until(thread, pred, f"a {kind} step {fields or ''}")

    def clock_to(self, ms: int) -> None:
        """Move the clock to ``ms`` (no move if it is there already)."""
        if ms > self.w.clock_ms:
            self.do("clock", ms - self.w.clock_ms)

    def write(self, *pages: int) -> None:
        """vCPU 0 writes each page once."""
        for p in pages:
            self.do("vcpu0", p)


def _through_first_exact_sync(d: Driver, pending: tuple[int, ...]) -> None:
    """Setup, the first round of sends, then writes to ``pending`` and the exact-pending sync
    (``dirty_sync_count`` 2) that finds them; the timer is asleep until 5000 ms."""
    d.do("mgmt", "start")
    d.do("migration")                  # before_setup arms the timer, then ram_init_bitmaps
    d.until_kind("timer", SLEEP)
    d.until(
        "migration", lambda w, r: r.kind == ITERATE_DONE and w.mig.migration_dirty_pages <= w.config.switchover_pages,
        "the end of the first round")
    d.write(*pending)
    d.until("migration", lambda w, r: r.kind == SYNC_DONE and w.mig.dirty_sync_count == 2, "the exact-pending sync")
    d.until("migration", lambda w, r: "BQL" not in w.actors["migration"].held, "the BQL's release after it")


def sync_yields_mutex_per_word() -> tuple[type, Config, list, str]:
    """The timer's sync moves a page into ``bmap`` and drops ``bitmap_mutex`` before owing its
    chunk's clear; the sender reads it, the guest rewrites it, then the sender's CLEAR of that
    chunk (for a neighbour page) erases the rewrite's only mark."""
    cls, cfg = PeriodicSyncYieldsMutexPerWord, Config(kvm_mode="manual")
    d = Driver(cfg, cls)
    _through_first_exact_sync(d, (0, 1, 40, 41, 42, 43, 44, 45))
    # one burst: it takes chunk 0's owed clear (page 0) and leaves a few pages for later
    d.until_kind("migration", ITERATE_DONE)
    w = d.w
    if w.blocks[0].clear_bmap.test(0) or w.blocks[0].bmap.test(0) or w.blocks[0].bmap.test(1):
        raise ScenarioError("the first burst did not send chunk 0 of ram0")
    victim, neighbour = 1, 2
    # the next burst (8 pages) must end with the victim: the pages left, then fillers before it
    left = [rb.offset + p for rb in w.blocks for p in rb.bmap.to_list()]
    fillers = [p for p in range(48, 64)][:w.config.burst - 1 - len(left)]
    if any(p < w.mig.pss_page for p in fillers) or w.mig.pss_block != 0:
        raise ScenarioError(f"the sender is at block {w.mig.pss_block} page {w.mig.pss_page}, not before the fillers")
    d.write(*fillers, victim, neighbour, 8, 9, 12, 13)
    d.clock_to(5000)
    d.until_kind("timer", TIMER_RETURN)            # tick 1 remembers dirty_sync_count (2)
    d.until_kind("timer", SLEEP)
    d.clock_to(10000)
    d.until_kind("timer", L2_XCHG)                 # tick 2 syncs: ram0's word is in bmap, mutex dropped
    d.until_kind("migration", DELIVER, page=victim)
    d.write(victim)                                # unprotected since the GET: no fault, L1 stays set
    d.until_kind("migration", ITERATE_DONE)
    d.until_kind("timer", CLEAR_BMAP_SET)          # chunk 0's clear is owed only now
    d.until_kind("timer", TIMER_RETURN)
    d.until_kind("migration", READ, page=neighbour)   # its chunk clear (mask L1c, victim in it) came first
    return cls, cfg, d.choices, "sync-yields-mutex-per-word-loss.json"


def timer_pre_clears_chunks() -> tuple[type, Config, list, str]:
    """The tick takes chunk 0's ``clear_bmap`` bit; before its CLEAR the sender reads page 0 (no
    clear owed), the guest rewrites it, and the tick's CLEAR erases the rewrite's only mark."""
    cls, cfg = PeriodicTimerPreClearsChunks, Config(kvm_mode="manual")
    d = Driver(cfg, cls)
    pending = (0, 1) + tuple(range(40, 60))
    _through_first_exact_sync(d, pending)
    d.clock_to(5000)
    d.until_kind("timer", CHUNK_TAKEN, block=0, chunk=0)
    victim = next(p for p in (0, 1) if d.w.blocks[0].bmap.test(p))
    d.until_kind("migration", DELIVER, page=victim)
    d.write(victim)                                # unprotected since the exact sync's GET: no fault
    d.do("timer")                                  # the tick's CLEAR of chunk 0, mask L1c ∋ victim
    return cls, cfg, d.choices, "timer-pre-clears-chunks-loss.json"


SCENARIOS = (sync_yields_mutex_per_word, timer_pre_clears_chunks)


def spec_of(cls) -> str:
    """How the CLI names a held-out class (``heldoutN.module:Class``)."""
    return f"{cls.__module__}:{cls.__name__}"


def check(scenario, save: bool = False, traces: Path = TRACES) -> tuple[str, object]:
    """Build ``scenario``'s schedule, run it from a fresh world with every check, optionally save
    the trace (in ``traces``); return the design's CLI name and the checked run's result."""
    cls, cfg, choices, fname = scenario()
    res = run(World(cfg, cls), choices, extend=True)
    if save and not res.ok:
        traces.mkdir(exist_ok=True)
        Trace.from_result(spec_of(cls), cfg, res).save(traces / fname)
    return spec_of(cls), res


def main(argv=None, scenarios=None, traces: Path | None = None, label: str = "heldout2") -> int:
    """Build every scenario (``scenarios``: this set's by default; another held-out set passes its
    own, with its ``traces`` folder and ``label``), print its checked verdict; exit 1 if one shows
    no property violation."""
    scenarios = SCENARIOS if scenarios is None else scenarios
    traces = TRACES if traces is None else traces
    p = argparse.ArgumentParser(description=f"{label}: directed ground truth, built and checked")
    p.add_argument("--save", action="store_true", help=f"write the traces to {label}/traces/")
    a = p.parse_args(argv)
    bad = 0
    for scenario in scenarios:
        try:
            name, res = check(scenario, a.save, traces)
        except ScenarioError as exc:
            print(f"{scenario.__name__}: scenario broken: {exc}")
            bad += 1
            continue
        if res.ok:
            print(f"{name}: no violation in {res.steps} steps")
            bad += 1
            continue
        lost = f"; lost write: {res.lost_write}" if res.lost_write else ""
        print(f"{name}: {res.violation.invariant} at step {res.violation_step} of {res.steps}: "
              f"{res.violation}{lost}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
