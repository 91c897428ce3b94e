"""The explorer: verdicts, shortest counterexamples that replay, sound fingerprints, reductions.

Default suite: small bounds only (a few seconds). Explorations of the full default bounds and of
the whole corpus are under the opt-in ``slow`` marker.
"""
from __future__ import annotations

import json

import pytest

from dirtyproof.cli.main import main
from dirtyproof.explore import Bounds, Reductions, default_config, explore
from dirtyproof.explore.fingerprint import fingerprint
from dirtyproof.explore.reductions import NONE
from dirtyproof.explore.soundness import sampled_pairs, successors
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.checked import replay
from dirtyproof.impl.trace import Trace
from dirtyproof.impl.world import World
from dirtyproof.mutants import MUTANTS, load_manifest

ZERO = Bounds(guest_writes=0, device_writes=0, clock_moves=0, cancels=0, moves=0)
ONE_WRITE = Bounds(guest_writes=1, device_writes=0, clock_moves=0, cancels=0, moves=1)
ONE_CLOCK = Bounds(guest_writes=0, device_writes=0, clock_moves=1, cancels=0, moves=1)
ONE_MOVE = Bounds(guest_writes=1, device_writes=1, clock_moves=1, cancels=1, moves=1)

# Mutants the explorer finds (a property) without any environment move, or with one: (name, bounds).
QUICK = [("dirty-count-raw-bits", ZERO), ("period-popcount", ZERO),
         ("timer-mutex-before-bql", Bounds(guest_writes=0, device_writes=0, clock_moves=1, cancels=0, moves=1))]
# Mutants whose rule the explorer reports without any move (the property needs more moves), with
# the KVM mode: clear-before-read flags a read only where the owed clear could erase a later
# write, i.e. the page is in the clear's mask (L1c); with no write at all only initially_set's
# all-ones first GET puts pages there (in manual mode one guest write is needed, 3 s).
QUICK_RULES = [("read-before-clear", ZERO, "initially_set"), ("bmap-init-last-page-missing", ZERO, "manual")]


def expected_checks(name: str) -> set:
    """The checks the manifest expects to catch ``name`` (its catcher; or its rule and property)."""
    entry = {**load_manifest()["designs"], **load_manifest()["mutants"]}[name]
    return {entry.get(k) for k in ("catcher", "rule", "property")} - {None}


@pytest.mark.parametrize("name,bounds", QUICK, ids=[q[0] for q in QUICK])
def test_quick_mutants_found_with_their_catcher(name, bounds):
    res = explore(MUTANTS[name], default_config("manual"), bounds)
    assert res.violation is not None
    assert res.violation.invariant in expected_checks(name)


@pytest.mark.parametrize("name,bounds,mode", QUICK_RULES, ids=[q[0] for q in QUICK_RULES])
def test_quick_mutants_rule_reported_not_a_verdict(name, bounds, mode):
    res = explore(MUTANTS[name], default_config(mode), bounds)
    assert load_manifest()["mutants"][name]["rule"] in res.rules


def test_counterexample_replays_to_the_same_violation(tmp_path):
    from dirtyproof.explore.report import save_trace
    res = explore(MUTANTS["dirty-count-raw-bits"], default_config("manual"), ZERO)
    path = save_trace(res, "dirty-count-raw-bits", str(tmp_path))
    _, replayed = replay(Trace.load(path))
    assert replayed.violation.invariant == "dirty-pages-count"
    assert replayed.violation_step == len(res.path) - 1


def test_breadth_first_gives_the_shortest_counterexample():
    # every path to the violation is at least as long as the one reported
    bfs = explore(MUTANTS["period-popcount"], default_config("manual"), ONE_WRITE, order="bfs")
    moves = explore(MUTANTS["period-popcount"], default_config("manual"), ONE_WRITE)
    assert bfs.violation is not None and len(bfs.path) <= len(moves.path)
    cut = explore(MUTANTS["period-popcount"], default_config("manual"),
                  ONE_WRITE.with_(max_depth=len(bfs.path) - 1), order="bfs")
    assert cut.violation is None and not cut.exhaustive


@pytest.mark.parametrize("design", ["legacy", "periodic", "iterate-sync", "background-v1"])
def test_shipped_designs_exhaust_a_zero_move_bound(design):
    res = explore(DESIGNS[design], default_config("manual"), ZERO)
    assert res.violation is None and res.exhaustive
    assert res.completed_paths > 0


def test_legacy_exhausts_a_zero_move_bound_in_each_mode():
    for mode in ("legacy", "manual", "initially_set"):
        res = explore(DESIGNS["legacy"], default_config(mode), ZERO)
        assert res.ok and res.exhaustive, mode


def test_partial_order_reduction_keeps_verdicts_and_saves_states():
    on = explore(DESIGNS["legacy"], default_config("manual"), ONE_CLOCK)
    off = explore(DESIGNS["legacy"], default_config("manual"), ONE_CLOCK, reductions=NONE)
    assert on.exhaustive and off.exhaustive
    assert on.distinct < off.distinct
    for name, bounds in QUICK[:5]:
        a = explore(MUTANTS[name], default_config("manual"), bounds, reductions=NONE)
        b = explore(MUTANTS[name], default_config("manual"), bounds, reductions=Reductions())
        assert a.violation.invariant == b.violation.invariant, name
        assert len(a.path) == len(b.path), name


def test_fingerprints_are_sound_on_sampled_pairs():
    """States with one fingerprint, reached by different paths, have the same successors."""
    pairs = 0
    for name in ("legacy", "periodic"):
        for ex, p1, p2, budgets in sampled_pairs(DESIGNS[name], default_config("manual"), ONE_WRITE, samples=3):
            assert successors(ex, p1, budgets) == successors(ex, p2, budgets), (name, p1, p2)
            pairs += 1
    assert pairs >= 4


def test_fingerprint_sees_thread_positions_and_layers():
    w1, w2 = World(default_config(), DESIGNS["legacy"]), World(default_config(), DESIGNS["legacy"])
    assert fingerprint(w1) == fingerprint(w2)
    w1.step(["mgmt", "start"]), w2.step(["mgmt", "start"])
    w1.step(["migration", None])
    assert fingerprint(w1) != fingerprint(w2)          # same data so far but for the frame
    w2.step(["migration", None])
    assert fingerprint(w1) == fingerprint(w2)
    w1.step(["vcpu0", 1])
    assert fingerprint(w1) != fingerprint(w2)


def test_cli_exit_codes_and_output(tmp_path, capsys):
    assert main(["explore", "--design", "legacy", "--kvm-mode", "manual", "--moves", "0"]) == 0
    out = capsys.readouterr().out
    assert "no violation: exhaustive within bounds B" in out and "distinct states" in out
    assert main(["explore", "--design", "dirty-count-raw-bits", "--kvm-mode", "manual", "--moves", "0",
                 "--trace-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION of dirty-pages-count" in out and "counterexample (" in out
    traces = list(tmp_path.glob("*.json"))
    assert len(traces) == 1 and json.loads(traces[0].read_text())["violation"]["invariant"] == "dirty-pages-count"
    # a rule is reported as a rule, not a verdict
    assert main(["explore", "--design", "read-before-clear", "--kvm-mode", "initially_set", "--moves", "0"]) == 0
    assert "rule clear-before-read broken" in capsys.readouterr().out
    assert main(["explore", "--design", "no-such-design"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cut_search_is_not_called_exhaustive():
    res = explore(DESIGNS["legacy"], default_config("manual"), ONE_WRITE.with_(max_states=50))
    assert res.ok and not res.exhaustive and res.capped


# -- the slow tier (opt-in: DIRTYPROOF_SLOW=1 python -m pytest -m slow tests/test_explore*.py) ------
OPT_IN = pytest.mark.skipif(__import__("os").environ.get("DIRTYPROOF_SLOW") != "1",
                            reason="slow tier: set DIRTYPROOF_SLOW=1")
# Not found within the default bound in the explored world (benchmarks/README.md): the three
# background-sync bugs need a third environment move (a write before an exact sync, a clock move
# past the watcher's idle time, a write the background sync moves), background-v1's loss a fourth;
# clear-previous-chunk's coverage loss is not found in 120,000 states of two moves (what the
# default bound reports for it is a progress lasso modulo statistics: test_explore_converge.py).
BEYOND_DEFAULT_BOUND = {"clear-previous-chunk", "forget-iter-fold", "bg-sync-takes-legacy-path", "background-v1"}
# The explorer's cheapest counterexample trips another check first than the hunt's shrunk one.
OTHER_CATCHER = {"bmap-reused-on-restart": "bmap-full-after-setup"}


def _first_violation(cls, bounds):
    for mode in ("initially_set", "manual", "legacy"):
        res = explore(cls, default_config(mode), bounds)
        if res.violation is not None:
            return res
    return None


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("name", [*MUTANTS, "background-v1"])
def test_corpus_found_within_the_default_bound_with_reductions_on(name):
    if name in BEYOND_DEFAULT_BOUND:
        pytest.xfail("needs three or more environment moves in the explored world")
    cls = MUTANTS.get(name) or DESIGNS[name]
    res = _first_violation(cls, Bounds())
    assert res is not None
    assert res.violation.invariant in expected_checks(name) | {OTHER_CATCHER.get(name)}


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("mode", ["legacy", "manual", "initially_set"])
@pytest.mark.parametrize("design", ["legacy", "periodic", "iterate-sync"])
def test_safe_designs_exhaust_the_default_bound(design, mode):
    res = explore(DESIGNS[design], default_config(mode), Bounds())
    assert res.ok and res.exhaustive


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("design", list(DESIGNS))
def test_fingerprints_sound_on_many_sampled_pairs(design):
    for ex, p1, p2, budgets in sampled_pairs(DESIGNS[design], default_config("manual"), ONE_MOVE, samples=30):
        assert successors(ex, p1, budgets) == successors(ex, p2, budgets), (p1, p2)


THREE_MOVES = Bounds(guest_writes=2, device_writes=0, clock_moves=1, cancels=0, moves=3)


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("name,check", [("forget-iter-fold", "dirty-pages-count"),
                                        ("bg-sync-takes-legacy-path", "bg-sync-no-bmap")])
def test_background_sync_bugs_found_with_three_moves(name, check):
    """Beyond the default bound: two writes and a clock move, in initially_set mode (2-3 min each)."""
    res = explore(MUTANTS[name], default_config("initially_set"), THREE_MOVES)
    assert res.violation is not None and res.violation.invariant == check


DEVICE_WRITE = Bounds(guest_writes=0, device_writes=1, clock_moves=0, cancels=0, moves=1, preemptions=1)


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("name,mode", [("count-outside-mutex", "legacy"), ("nonatomic-xchg", "initially_set")])
def test_the_reduction_postpones_device_writes_and_keeps_their_bugs(name, mode):
    """The checker's look at L2 around a step is not in the step's footprint, so a device write
    commutes with the steps that touch neither its page nor L2 whole: fewer states, and the bugs a
    device write exposes found alike, at the same length (2-4 s)."""
    off = explore(MUTANTS[name], default_config(mode), DEVICE_WRITE, reductions=NONE)
    on = explore(MUTANTS[name], default_config(mode), DEVICE_WRITE, reductions=Reductions())
    assert off.violation is not None and on.violation is not None
    assert on.violation.invariant == off.violation.invariant and len(on.path) == len(off.path)
    assert on.distinct < off.distinct
