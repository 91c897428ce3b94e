"""Read deadlines (explore/deadlines.py): the clock targets come from the reference times and
periods the run's code reads, a fixpoint of the run; a design that reads one late is explored
again with it, and without the restart its bug would be missed (the check can fail)."""
from __future__ import annotations

from dataclasses import replace

from dirtyproof.explore import deadlines as dl
from dirtyproof.explore.bounds import Bounds, default_config, slow_geometry
from dirtyproof.explore.choices import clock_targets
from dirtyproof.explore.engine import Explorer
from dirtyproof.explore.reductions import Reductions
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.impl.designs.base import Design

ONE_CLOCK = Bounds(guest_writes=0, device_writes=0, clock_moves=1, cancels=0, moves=1, preemptions=0)
WRITE_CLOCK = Bounds(guest_writes=1, device_writes=0, clock_moves=1, cancels=0, moves=2, preemptions=0)


def _world():
    return replace(default_config("legacy"), geometry=slow_geometry())


class LateReader(Design):
    """Miscounts ``migration_dirty_pages`` when an iteration starts 3 s after the last sync, once
    two syncs have run: it reads ``iterate_sync_ms`` and ``last_sync_end_ms`` only then (a
    reviewer's periodic work, written wrongly)."""

    name = "late-reader"

    def ram_save_iterate(self, w):
        """The broken check, then the base iteration."""
        mig, cfg = w.mig, w.config
        if mig.dirty_sync_count > 1 and w.clock_ms - mig.last_sync_end_ms >= cfg.iterate_sync_ms:
            mig.migration_dirty_pages += 1
        yield from super().ram_save_iterate(w)


class AttachReader(Design):
    """LateReader's miscount with the period read once, when the design attaches to the world,
    and kept: the later comparisons read only ``last_sync_end_ms``."""

    name = "attach-reader"

    def attach(self, w) -> None:
        """Keep the period."""
        super().attach(w)
        self.period = w.config.iterate_sync_ms

    def ram_save_iterate(self, w):
        """The broken check, then the base iteration."""
        mig = w.mig
        if mig.dirty_sync_count > 1 and w.clock_ms - mig.last_sync_end_ms >= self.period:
            mig.migration_dirty_pages += 1
        yield from super().ram_save_iterate(w)


def test_config_copy_is_equal_and_records_only_while_on():
    cfg = _world()
    dc = dl.deadline_config(cfg)
    assert dc == cfg and dc.watcher_idle_ms == cfg.watcher_idle_ms
    assert replace(dc, kvm_mode="manual").kvm_mode == "manual"
    dl.start()
    _ = dc.iterate_sync_ms
    assert not dl.READ
    dl._ON[0] = True
    try:
        _ = dc.iterate_sync_ms
    finally:
        dl._ON[0] = False
    assert dl.READ == {"iterate_sync_ms"}
    dl.start()


def test_shipped_designs_deadlines_are_what_their_code_reads():
    got = {}
    for name in ("legacy", "iterate-sync", "background-v1", "periodic"):
        # iterate-sync reads its period once two syncs have run (a write keeps the iteration
        # going); the periodic timer reads its own when it first runs (it needs a preemption)
        bounds = replace(ONE_CLOCK, preemptions=1) if name == "periodic" else WRITE_CLOCK
        res = Explorer(DESIGNS[name], _world(), bounds).run()
        assert res.exhaustive
        got[name] = (res.deadlines.refs, res.deadlines.periods)
    assert got["legacy"] == (("time_last_bitmap_sync",), (1000,))
    assert got["iterate-sync"] == (("time_last_bitmap_sync", "last_sync_end_ms"), (1000, 3000))
    assert got["periodic"] == (("time_last_bitmap_sync",), (1000, 5000))
    # its watcher reads the idle period only once it sees an unchanged count: not in one move
    assert got["background-v1"][0] == ("time_last_bitmap_sync",)
    assert 1000 in got["background-v1"][1]


def test_targets_leave_out_what_no_code_reads():
    ex = Explorer(DESIGNS["legacy"], _world(), ONE_CLOCK)
    ex.run()
    w = ex.replay([])
    w.step(["mgmt", "start"])
    mig = w.mig
    everything = dl.all_deadlines(ex.given_config)
    assert set(clock_targets(w, ex.periods, ex.refs)) <= set(clock_targets(w, everything.periods, everything.refs))
    assert mig.time_last_bitmap_sync + 3000 + 1 not in clock_targets(w, ex.periods, ex.refs)


def test_a_late_read_restarts_the_run_and_its_bug_is_found():
    res = Explorer(LateReader, _world(), WRITE_CLOCK).run()
    assert res.violation is not None and res.violation.invariant == "dirty-pages-count", res.violation
    assert res.deadlines.restarts >= 1
    assert {"iterate_sync_ms", "last_sync_end_ms"} <= res.deadlines.fields
    # the same bug with every deadline of the config, and with the same counterexample length
    full = Explorer(LateReader, _world(), WRITE_CLOCK, Reductions(deadlines=False)).run()
    assert full.violation.invariant == "dirty-pages-count" and len(full.path) == len(res.path)
    assert "the code read; " in res.deadlines.describe() and "of the config" in full.deadlines.describe()


def test_without_the_restart_the_late_read_bug_is_missed(monkeypatch):
    class Deaf(set):
        def add(self, x):            # no read recorded: the run never learns of the 3 s period
            pass

    monkeypatch.setattr(dl, "READ", Deaf())
    res = Explorer(LateReader, _world(), WRITE_CLOCK).run()
    assert res.violation is None and res.exhaustive
    assert res.deadlines.restarts == 0


def test_a_period_read_when_the_design_attaches_is_a_deadline():
    res = Explorer(AttachReader, _world(), WRITE_CLOCK).run()
    assert res.violation is not None and res.violation.invariant == "dirty-pages-count", res.violation
    assert {"iterate_sync_ms", "last_sync_end_ms"} <= res.deadlines.fields
