"""Non-convergence reported as a ``progress`` lasso modulo statistics (explore/converge.py).

Default suite: one vCPU write on the fast-path block alone, paths cut at depth 60 (about a
second per exploration). The portfolio's verdict on clear-previous-chunk is checked by the
slow tier (tests/test_explore_gate.py, against mutants/manifest.json).
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from dirtyproof.checked import replay
from dirtyproof.explore import Bounds, default_config, explore
from dirtyproof.explore.bounds import fast_geometry
from dirtyproof.explore.converge import PUMP_TURNS
from dirtyproof.explore.fingerprint import abstract, fingerprint
from dirtyproof.explore.report import save_trace
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.impl.ghost import Ghost
from dirtyproof.impl.trace import Trace
from dirtyproof.impl.world import MigrationState, World
from dirtyproof.mutants import MUTANTS

CPC = MUTANTS["clear-previous-chunk"]
FAST = replace(default_config("manual"), geometry=fast_geometry())
ONE_WRITE_CUT = Bounds(guest_writes=1, device_writes=0, clock_moves=0, cancels=0, moves=1, max_depth=60)


def test_clear_previous_chunk_is_a_progress_lasso_modulo_statistics(tmp_path):
    """The check rejects a broken design: one write to chunk 1 is fetched again by every sync."""
    res = explore(CPC, FAST, ONE_WRITE_CUT)
    assert res.violation is not None and res.violation.invariant == "progress"
    assert res.violation.message.startswith("no convergence: the loop")
    assert f"pumped {PUMP_TURNS} turns" in res.violation.message
    p = res.pump
    assert p is not None and p.turns == PUMP_TURNS
    assert res.path[p.prefix:] == p.turn and all(ch[0] == "migration" for ch in p.turn)
    assert p.grows["MigrationState.dirty_sync_count"] == 1          # one sync per turn
    assert "MigrationState.migration_dirty_pages" not in p.grows     # not a statistic
    # prefix + one turn replays, and the state after it equals the loop's start modulo statistics
    w = World(FAST, CPC)
    for ch in res.path[:p.prefix]:
        w.step(ch)
    start = abstract(w)
    before = fingerprint(w)
    for ch in p.turn:
        w.step(ch)
    assert abstract(w) == start and fingerprint(w) != before
    # saved as a replayable trace
    path = save_trace(res, "clear-previous-chunk", str(tmp_path))
    tr = Trace.load(path)
    assert tr.steps == res.path
    _, replayed = replay(tr)
    assert replayed.violation is None and len(replayed.log) == len(res.path) and not replayed.completed


def test_without_the_statistics_declared_the_search_is_only_cut(monkeypatch):
    """What makes the report is the model's declaration: without it the same search is cut."""
    monkeypatch.setattr(MigrationState, "STATISTICS", ())
    monkeypatch.setattr(Ghost, "STATISTICS", ())
    import importlib
    monkeypatch.setattr(importlib.import_module("dirtyproof.explore.fingerprint"), "_PLANS", {})
    res = explore(CPC, FAST, ONE_WRITE_CUT)
    assert res.violation is None and res.truncated and not res.exhaustive


def _forced(check, label):
    """clear-previous-chunk, but the migration completes once ``check(w)`` holds."""
    class Forced(CPC):
        name = label

        def below_threshold(self, w) -> bool:
            return check(w) or super().below_threshold(w)
    return Forced


@pytest.mark.parametrize("design", [
    # the 5th sync forces completion: within the pumped turns
    _forced(lambda w: w.mig.dirty_sync_count >= 5, "completes-at-sync-5"),
    # past the pumped turns, but below the shifted counts
    _forced(lambda w: w.mig.dirty_sync_count >= 1000, "completes-at-sync-1000"),
    # time, not a count: the loop lets no time pass, the time-passing rounds do
    _forced(lambda w: w.clock_ms >= 10_000, "completes-after-10s"),
], ids=["sync-5", "sync-1000", "after-10s"])
def test_a_loop_that_completes_because_of_a_count_or_time_is_not_reported(design):
    res = explore(design, FAST, ONE_WRITE_CUT)
    assert res.violation is None and res.pump is None
    assert res.truncated and not res.exhaustive          # cut, as before: nothing is claimed


SYNC5 = _forced(lambda w: w.mig.dirty_sync_count >= 5, "completes-at-sync-5")


@pytest.mark.parametrize("design,off", [
    (SYNC5, {"SHIFT": 0, "PUMP_TURNS": 1, "TIME_ROUNDS": 0}),    # the time rounds turn the loop too
    (_forced(lambda w: w.mig.dirty_sync_count >= 1000, "completes-at-sync-1000"), {"SHIFT": 0}),
    (_forced(lambda w: w.clock_ms >= 10_000, "completes-after-10s"), {"TIME_ROUNDS": 0}),
], ids=["pump", "shift", "time"])
def test_each_guard_of_the_report_can_fail(design, off, monkeypatch):
    """With the guard that stops it turned off, each of the designs above would be reported: each
    of the three checks before a report rejects a loop the others let through."""
    import importlib
    conv = importlib.import_module("dirtyproof.explore.converge")
    for k, v in off.items():
        monkeypatch.setattr(conv, k, v)
    res = explore(design, FAST, ONE_WRITE_CUT)
    assert res.violation is not None and res.violation.invariant == "progress"


def test_pumping_alone_stops_the_fifth_sync(monkeypatch):
    """Without the shift and the time rounds, the pumped turns alone reach the fifth sync."""
    import importlib
    conv = importlib.import_module("dirtyproof.explore.converge")
    monkeypatch.setattr(conv, "SHIFT", 0)
    monkeypatch.setattr(conv, "TIME_ROUNDS", 0)
    res = explore(SYNC5, FAST, ONE_WRITE_CUT)
    assert res.violation is None and res.truncated


def test_a_correct_design_cut_mid_iteration_is_not_reported():
    """legacy's iterations take several rounds after a write; a search cut in them is just cut."""
    res = explore(DESIGNS["legacy"], FAST, ONE_WRITE_CUT.with_(max_depth=30))
    assert res.violation is None and res.truncated


def test_statistics_are_explicit_model_data():
    """The declaration is data on the model's classes, every name a field that exists."""
    w = World(FAST, DESIGNS["legacy"])
    w.step(["mgmt", "start"])
    for obj in (w.mig, w.ghost):
        names = type(obj).STATISTICS
        assert names and all(isinstance(getattr(obj, n), int) for n in names)
