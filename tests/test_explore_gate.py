"""The explorer as an engine of ``check`` and ``prove``: the default bound (explore/portfolio.py),
its expectations in mutants/manifest.json, and the comparison that can fail.

Default suite: the manifest's shape, the comparison on synthetic judgements, one quick mutant
judged over the whole default bound, and ``check``/``prove`` on a design without a per-page
encoding (seconds). The whole corpus over the default bound is in the opt-in slow tier.
"""
from __future__ import annotations

import json
import os

import pytest

from dirtyproof.cli.main import main
from dirtyproof.explore import Bounds, default_config, explore
from dirtyproof.explore.portfolio import default_portfolio
from dirtyproof.explore.soundness import sampled_pairs, successors
from dirtyproof.explore.verdict import CUT, SAFE, UNSAFE, Judgement, expected, judge, matches
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.mutants import MUTANTS, load_manifest

ALL = {**{n: c for n, c in DESIGNS.items()}, **MUTANTS}


def test_manifest_has_an_explorer_expectation_for_every_design_and_mutant():
    m = load_manifest()
    for group in ("designs", "mutants"):
        for name, entry in m[group].items():
            e = entry["explore"]
            assert e["verdict"] in (SAFE, UNSAFE, CUT), name
            if e["verdict"] == UNSAFE:
                assert isinstance(e["property"], str) and isinstance(e["steps"], int), name
                assert e["run"] in {label for en in default_portfolio() for label, _ in en.runs()}, name
    # a shipped design that the manifest expects safe must be exhausted by the default bound
    for name, entry in m["designs"].items():
        if entry["verdict"] == "safe":
            assert entry["explore"]["verdict"] == SAFE, name


def test_every_portfolio_run_is_named_and_bounded():
    labels = [label for e in default_portfolio() for label, _ in e.runs()]
    assert len(labels) == len(set(labels)) and labels
    for e in default_portfolio():
        assert e.why and e.modes and e.bounds.max_states > 0


def _j(verdict, inv=None, steps=None):
    return Judgement(verdict, inv, steps, "r", None)


def test_the_comparison_rejects_a_wrong_verdict_property_or_length():
    want = {"verdict": UNSAFE, "property": "coverage", "steps": 12, "run": "r"}
    assert matches(_j(UNSAFE, "coverage", 12), want) == (True, "")
    assert not matches(_j(SAFE), want)[0]                         # a missed bug
    assert not matches(_j(CUT), want)[0]
    assert not matches(_j(UNSAFE, "no-loss", 12), want)[0]         # another property
    assert not matches(_j(UNSAFE, "coverage", 13), want)[0]        # not the cheapest any more
    assert not matches(_j(UNSAFE, "coverage", 3), {"verdict": SAFE})[0]   # a safe design broken
    assert not matches(_j(CUT), {"verdict": SAFE})[0]              # nothing shown is no pass


def test_a_user_design_is_expected_safe():
    class Mine(DESIGNS["legacy"]):
        pass
    assert expected("mine.py:Mine", Mine) == {"verdict": SAFE}


def test_a_quick_mutant_over_the_default_bound_is_as_the_manifest_says(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRTYPROOF_EXPLORE_BOUND", "default")
    j = judge(MUTANTS["period-popcount"], "period-popcount", trace_dir=str(tmp_path))
    assert matches(j, expected("period-popcount", MUTANTS["period-popcount"])) == (True, "")
    assert j.trace and os.path.exists(j.trace)


def test_prove_without_an_encoding_runs_the_explorer(capsys, tmp_path):
    # under the suite's threads bound: period-popcount's counterexample is in that run
    rc = main(["prove", "--design", "period-popcount", "--config", "manual/mixed", "--trace-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "explorer: period-counter broken after" in out and "proved for all sizes" not in out.replace(
        "not proved for all sizes", "")


def test_check_has_an_explore_row_in_table_and_reports(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DIRTYPROOF_EXPLORE_BOUND", "default")
    js, junit = tmp_path / "r.json", tmp_path / "r.xml"
    rc = main(["check", "--design", "period-popcount", "--jobs", "1", "--hunt-budget", "0.5",
               "--trace-dir", str(tmp_path / "t"), "--json", str(js), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = [r for r in json.loads(js.read_text())["results"] if r["engine"] == "explore"]
    assert len(rows) == 1 and rows[0]["ok"] and rows[0]["got"].startswith("unsafe (period-counter")
    assert "period-popcount.explore" in junit.read_text()
    assert "  explore " in out and "explore   every interleaving" in out


def test_a_preemption_is_a_switch_away_from_a_thread_that_could_go_on():
    from dirtyproof.explore.choices import after_thread, preempted
    b = Bounds(preemptions=1).budgets()
    b1 = after_thread(b, ["migration", "timer"], "migration")          # the first step: free
    assert b1[5:7] == (1, "migration")
    b2 = after_thread(b1, ["migration", "timer"], "timer")             # the migration could go on
    assert b2[5:7] == (0, "timer") and preempted(b2, ["migration", "timer"])
    b3 = after_thread(b2, ["migration"], "migration")                  # the timer sleeps: free
    assert b3[5:7] == (0, "migration") and not preempted(b3, ["migration"])
    assert after_thread(Bounds().budgets(), ["a", "b"], "b") == Bounds().budgets()   # unbounded


def test_wakeup_preemption_frees_a_switch_to_a_thread_that_has_not_stepped_since_it_was_made_runnable():
    from dirtyproof.explore.choices import after_thread, allowed
    b = Bounds(preemptions=0, wakeup_preemption=True).budgets()
    b1 = after_thread(b, ["migration"], "migration")                   # the timer sleeps
    assert allowed(b1, ["migration", "timer"]) == ["migration", "timer"]   # the clock woke it: free
    b2 = after_thread(b1, ["migration", "timer"], "timer")
    assert b2[5:8] == (0, "timer", ((), ("migration", "timer")))
    # the migration thread has stepped since it was made runnable: a switch back is a preemption
    assert allowed(b2, ["migration", "timer"]) == ["timer"]
    # a woken thread that has not stepped yet may take over later too
    b3 = after_thread(b1, ["migration", "timer"], "migration")
    assert allowed(b3, ["migration", "timer"]) == ["migration", "timer"]
    plain = Bounds(preemptions=0).budgets()
    assert allowed(after_thread(plain, ["migration"], "migration"), ["migration", "timer"]) == ["migration"]


def test_the_canonical_wakeup_record_decides_every_choice_as_the_recorded_one():
    """A node's wake-up record is stored as ``(fresh now, runnable now)``: for every record, last
    thread and runnable set over three threads, the allowed threads and the budgets after each
    step are the same from both forms; and two records that differ only in when a thread was
    woken become one."""
    import itertools

    from dirtyproof.explore.choices import READY, after_thread, allowed, canonical_ready
    names = ("migration", "timer", "watcher")
    subsets = [tuple(c) for k in range(4) for c in itertools.combinations(names, k)]
    base = Bounds(preemptions=0, wakeup_preemption=True).budgets()
    for fresh, before, runnable, last in itertools.product(subsets, subsets, subsets, (None,) + names):
        b = tuple(base[:READY - 1]) + (last, (fresh, before))
        c = canonical_ready(b, runnable)
        assert canonical_ready(c, runnable) == c
        assert allowed(c, list(runnable)) == allowed(b, list(runnable))
        for n in runnable:
            assert after_thread(c, list(runnable), n) == after_thread(b, list(runnable), n)
    # the watcher woken before the migration thread's step, or after it: one record
    early = after_thread(base, ["migration", "watcher"], "migration")
    late = after_thread(base, ["migration"], "migration")
    assert early != late
    assert canonical_ready(early, ["migration", "watcher"]) == canonical_ready(late, ["migration", "watcher"])
    assert canonical_ready(Bounds(preemptions=0).budgets(), names) == Bounds(preemptions=0).budgets()


def test_canonical_budgets_decide_every_choice_as_the_recorded_ones():
    """A node's budgets are stored canonically (kinds capped at the moves left; with wake-up
    preemption, the last thread dropped while every other runnable thread is fresh): for every
    budget vector over small bounds, last thread still runnable and runnable set over three
    threads, the allowed threads, whether a bound preempts, which move kinds are offered and the
    canonical budgets after each thread step and each paid move (whatever it makes runnable) are
    the same from both forms."""
    import itertools

    from dirtyproof.explore.choices import (CLOCK, GUEST, LAST, MOVES, READY, after_thread, allowed,
                                            canonical_budgets, preempted)
    from dirtyproof.explore.engine import _spend
    names = ("migration", "timer", "watcher")
    subsets = [tuple(c) for k in range(4) for c in itertools.combinations(names, k)]
    for wake, preempt, guest, clock, moves in itertools.product((False, True), (-1, 0, 1), range(3), range(3),
                                                              range(3)):
        base = Bounds(guest_writes=guest, device_writes=0, clock_moves=clock, cancels=0, moves=moves,
                      preemptions=None if preempt < 0 else preempt, wakeup_preemption=wake).budgets()
        for runnable, fresh in itertools.product(subsets, subsets):
            r = list(runnable)
            for last in (None,) + (runnable if preempt >= 0 else ()):
                ready = None if base[READY] is None else (tuple(n for n in fresh if n in runnable), runnable)
                b = tuple(base[:LAST]) + (last, ready)
                c = canonical_budgets(b, r)
                assert canonical_budgets(c, r) == c
                assert c[MOVES] == b[MOVES]            # the cost order reads the moves left
                assert allowed(c, r) == allowed(b, r) and preempted(c, r) == preempted(b, r)
                offered = lambda x: [bool(x[MOVES]) and bool(x[k]) for k in (GUEST, CLOCK)]
                assert offered(c) == offered(b)
                for r2 in subsets:
                    for n in runnable:
                        assert (canonical_budgets(after_thread(c, r, n), list(r2))
                                == canonical_budgets(after_thread(b, r, n), list(r2)))
                    for slot in (GUEST, CLOCK):
                        if b[MOVES] and b[slot]:
                            assert (canonical_budgets(_spend(c, slot), list(r2))
                                    == canonical_budgets(_spend(b, slot), list(r2)))


def test_a_thread_that_cannot_go_on_is_not_preempted_when_it_wakes():
    """A last thread that sleeps, blocks or exits gave up its CPU: it is forgotten as the last
    thread (explore/choices.py ``canonical_budgets``), so when a clock move wakes it again the
    thread that was waiting may go on without spending a preemption (before s13 it could not
    within a bound of 0 unless it had not stepped since it was made runnable)."""
    from dirtyproof.explore.choices import LAST, after_thread, allowed, canonical_budgets
    for wake in (False, True):
        both = ["migration", "watcher"]
        base = Bounds(preemptions=0, wakeup_preemption=wake).budgets()
        # the watcher stepped last, both having stepped before (neither is fresh)
        last = tuple(base[:LAST]) + ("watcher", None if base[-1] is None else ((), tuple(both)))
        slept = canonical_budgets(last, ["migration"])      # its step put it to sleep
        assert slept[LAST] is None
        woken = canonical_budgets(slept, ["migration", "watcher"])      # a clock move wakes it
        assert allowed(woken, ["migration", "watcher"]) == ["migration", "watcher"]
        assert after_thread(woken, ["migration", "watcher"], "migration")[5] == 0   # no preemption spent
        # while the watcher can go on, the migration thread taking over is a preemption
        ran = canonical_budgets(last, both)
        assert ran[LAST] == "watcher" and allowed(ran, ["migration", "watcher"]) == ["watcher"]


def test_the_preemption_bound_prunes_and_keeps_fingerprints_sound():
    zero = Bounds(guest_writes=0, device_writes=0, clock_moves=0, cancels=0, moves=0)
    cfg = default_config("manual")
    free = explore(DESIGNS["periodic"], cfg, zero)
    none = explore(DESIGNS["periodic"], cfg, zero.with_(preemptions=0))
    assert free.exhaustive and none.exhaustive and none.distinct < free.distinct
    for ex, p1, p2, budgets in sampled_pairs(DESIGNS["periodic"], cfg, zero.with_(preemptions=1), samples=8):
        assert successors(ex, p1, budgets) == successors(ex, p2, budgets), (p1, p2)


def test_check_explore_row_fails_a_user_design_it_breaks(capsys, tmp_path):
    # a user's copy of a counting bug: expected safe (not in the manifest), broken without any move
    mod = tmp_path / "mine.py"
    mod.write_text("from dirtyproof.mutants.syncs import DirtyCountRawBits\n\n\n"
                   "class Mine(DirtyCountRawBits):\n    \"\"\"A user's design.\"\"\"\n    name = \"mine\"\n")
    js = tmp_path / "r.json"
    rc = main(["check", "--design", f"{mod}:Mine", "--jobs", "1", "--hunt-budget", "0.5",
               "--trace-dir", str(tmp_path / "t"), "--json", str(js)])
    err = capsys.readouterr().err
    assert rc == 1
    # a wall-clock hunt budget: the explorer waits for the hunts, which keep the cores they are given
    assert "more process(es) after the hunts (a wall-clock hunt budget)" in err
    row = [r for r in json.loads(js.read_text())["results"] if r["engine"] == "explore"][0]
    assert row["expected"] == SAFE and not row["ok"] and row["got"].startswith("unsafe (dirty-pages-count")
    assert row["trace"] and os.path.exists(row["trace"])


def test_a_bad_explore_bound_is_bad_input(capsys, monkeypatch):
    monkeypatch.setenv("DIRTYPROOF_EXPLORE_BOUND", "everything")
    for argv in (["check", "--design", "legacy"], ["prove", "--design", "legacy"],
                 ["explore", "--design", "legacy"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "DIRTYPROOF_EXPLORE_BOUND='everything'" in err


def test_one_design_gets_the_whole_default_bound_and_several_its_first_entry(capsys, monkeypatch, tmp_path):
    """Without ``--explore-bound`` or the environment, ``check``/``prove`` on one named design (a
    reviewer's own) explore the whole default bound, and on several (the six shipped: the gate)
    its ``threads`` entry; the flag and the environment still decide when given, and the choice
    is said before any work."""
    from dirtyproof.explore.portfolio import BOUND_ENV, apply_bound_flag, chosen_bound, gate_default
    assert gate_default(1) == "default" and gate_default(6) == "threads"
    monkeypatch.delenv(BOUND_ENV, raising=False)
    assert apply_bound_flag(None, gate_default(1)) == "default" and chosen_bound() == "default"
    monkeypatch.delenv(BOUND_ENV, raising=False)
    assert apply_bound_flag("threads", gate_default(1)) == "threads"
    monkeypatch.setenv(BOUND_ENV, "threads")
    assert apply_bound_flag(None, gate_default(1)) == "threads"
    # the CLI: a mutant the threads entry finds, so the whole bound stops at its first run
    monkeypatch.delenv(BOUND_ENV, raising=False)
    rc = main(["check", "--design", "period-popcount", "--jobs", "1", "--hunt-schedules", "2",
               "--hunt-examples", "2", "--trace-dir", str(tmp_path / "t")])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "the explorer's default bound on 1 more process(es)" in err
    assert "default bound" in [ln for ln in out.splitlines() if " explore " in ln][0]


def test_the_deep_bound_is_the_default_bound_then_four_moves_on_one_page(monkeypatch):
    """``deep`` explores the default bound's entries in their order, then the four-move entry;
    under it a design the default bound finds unsafe is expected as there, and every design it
    does not has a ``deep`` expectation of its own in the manifest (background-v1: its loss)."""
    from dirtyproof.explore.portfolio import BOUND_ENV, deep_entries, gate_portfolio
    from dirtyproof.explore.verdict import expected_within
    monkeypatch.setenv(BOUND_ENV, "deep")
    assert gate_portfolio() == default_portfolio() + deep_entries()
    m = load_manifest()
    for group in ("designs", "mutants"):
        for name, entry in m[group].items():
            cls = ALL[name]
            want = expected_within(name, cls, "deep")
            if entry["explore"]["verdict"] == UNSAFE:
                assert want == entry["explore"], name
            else:
                assert "deep" in entry["explore"], name
                assert want == entry["explore"]["deep"] and want["verdict"] in (SAFE, UNSAFE, CUT), name
                if want["verdict"] == UNSAFE:
                    assert want["run"] in {label for en in deep_entries() for label, _ in en.runs()}, name
    bg = expected_within("background-v1", DESIGNS["background-v1"], "deep")
    assert (bg["verdict"], bg["property"], bg["steps"], bg["run"]) == (UNSAFE, "coverage", 43, "four-moves/legacy")
    assert expected_within("mine", object, "deep") == {"verdict": SAFE}


def test_the_threads_bound_compares_only_what_its_runs_can_find(monkeypatch):
    from dirtyproof.explore.verdict import expected_within
    assert expected_within("legacy", DESIGNS["legacy"], "threads") == {"verdict": SAFE}
    assert expected_within("period-popcount", MUTANTS["period-popcount"], "threads")["verdict"] == UNSAFE
    want = expected("no-final-sync", MUTANTS["no-final-sync"])
    assert want["verdict"] == UNSAFE and not want["run"].startswith("threads/")
    assert expected_within("no-final-sync", MUTANTS["no-final-sync"], "threads") == {"verdict": "any"}
    monkeypatch.setenv("DIRTYPROOF_EXPLORE_BOUND", "threads")
    from dirtyproof.explore.portfolio import gate_portfolio
    assert [e.name for e in gate_portfolio()] == ["threads"]


# -- the slow tier: the whole corpus over the default bound ---------------------------------------
OPT_IN = pytest.mark.skipif(os.environ.get("DIRTYPROOF_SLOW") != "1", reason="slow tier: set DIRTYPROOF_SLOW=1")


@pytest.mark.slow
@OPT_IN
def test_no_preemption_misses_the_timer_lock_order_bug_one_finds_it():
    """The preemption bound is a bound: the timer must interrupt the sender once (about 2 min)."""
    one_clock = Bounds(guest_writes=0, device_writes=0, clock_moves=1, cancels=0, moves=1)
    cls = MUTANTS["timer-mutex-before-bql"]
    assert explore(cls, default_config("manual"), one_clock.with_(preemptions=0)).violation is None
    res = explore(cls, default_config("manual"), one_clock.with_(preemptions=1))
    assert res.violation is not None and res.violation.invariant == "lock-order"


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("name", list(ALL))
def test_default_bound_verdict_is_the_manifests(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DIRTYPROOF_EXPLORE_BOUND", "default")
    j = judge(ALL[name], name, trace_dir=str(tmp_path))
    assert matches(j, expected(name, ALL[name])) == (True, ""), j.detail()


DEEP = [n for n in ALL if "deep" in expected(n, ALL[n])]


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("name", DEEP)
def test_deep_bound_verdict_is_the_manifests(name, tmp_path, monkeypatch):
    """The deep bound's entry on every design the default bound does not find unsafe (up to 7
    minutes of CPU each: periodic's exhaustion, background-v1's loss)."""
    from dirtyproof.explore.portfolio import deep_entries
    from dirtyproof.explore.run import portfolio_runs
    from dirtyproof.explore.verdict import expected_within
    monkeypatch.setenv("DIRTYPROOF_EXPLORE_BOUND", "deep")
    # the default bound's runs are the test above's; only the deep entry is new
    j = judge(ALL[name], name, runs=portfolio_runs(deep_entries()), trace_dir=str(tmp_path))
    assert matches(j, expected_within(name, ALL[name], "deep")) == (True, ""), j.detail()


def test_explore_config_names_a_world_as_run_and_prove_do(capsys):
    """``--config KVM_MODE/GEOMETRY`` means the same world for explore as for run and prove: that
    geometry, in that mode only; a bad name is one line and exit 2."""
    rc = main(["explore", "--design", "legacy", "--config", "manual/aligned", "--moves", "0",
               "--max-states", "50", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 1 and "kvm_mode=manual" in out and "kvm_mode=legacy" not in out    # cut at 50 states
    assert main(["explore", "--design", "legacy", "--config", "bogus/x"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "KVM_MODE/GEOMETRY" in err


# -- the two-moves entries (issue 9): the bugs one move cannot reach ------------------------------
def _entry(name):
    return {e.name: e for e in default_portfolio()}[name]


def test_the_two_move_entries_explore_the_fast_path_block_alone_without_preemption():
    """The entries after ``one-move`` spend two moves on a smaller world: the fast-path block
    alone, no preemption, one KVM mode each (what their bugs need, docs/explore.md)."""
    for name, mode in (("two-writes", "manual"), ("write-clock", "legacy")):
        e = _entry(name)
        assert e.modes == (mode,) and e.bounds.moves == 2 and e.bounds.preemptions == 0
        blocks = e.config.geometry.blocks
        assert len(blocks) == 1 and blocks[0].fast_path
    assert _entry("two-writes").bounds.guest_writes == 2 and _entry("two-writes").bounds.clock_moves == 0
    assert _entry("write-clock").bounds.guest_writes == 1 and _entry("write-clock").bounds.clock_moves == 1


def test_the_preempting_entry_comes_last_on_the_slow_path_block_alone():
    """The entry added after the two-move ones (docs/explore.md): the same write and clock move
    with one preemption, on the default world's slow-path block alone, in legacy mode; last, so
    that every earlier entry keeps finding what it finds."""
    e = default_portfolio()[-1]
    assert e.name == "write-clock-preempt" and e.modes == ("legacy",)
    b = e.bounds
    assert (b.guest_writes, b.device_writes, b.clock_moves, b.cancels, b.moves, b.preemptions) == (1, 0, 1, 0, 2, 1)
    blocks = e.config.geometry.blocks
    assert len(blocks) == 1 and not blocks[0].fast_path
    slow = [blk for blk in default_config("manual").geometry.blocks if not blk.fast_path]
    assert (blocks[0].name, blocks[0].offset, blocks[0].pages) == (slow[0].name, slow[0].offset, slow[0].pages)


def _run(name, cls):
    e = _entry(name)
    return explore(cls, e.config_for(e.modes[0]), e.bounds)


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("entry,mutant", [("two-writes", "clear-mask-range"), ("write-clock", "iterate-sync-in-mutex"),
                                          ("write-clock-preempt", "forget-iter-fold")])
def test_a_two_move_entry_finds_what_one_move_misses(entry, mutant):
    """Each entry finds the mutant it is there for (seconds each; forget-iter-fold about 20 s of
    CPU), with the manifest's length."""
    want = load_manifest()["mutants"][mutant]["explore"]
    res = _run(entry, MUTANTS[mutant])
    assert want["run"] == f"{entry}/{_entry(entry).modes[0]}"
    assert res.violation is not None and res.violation.invariant == want["property"]
    assert len(res.path) == want["steps"]


@pytest.mark.slow
@OPT_IN
@pytest.mark.parametrize("entry", ["two-writes", "write-clock", "write-clock-preempt"])
@pytest.mark.parametrize("design", ["legacy", "periodic", "iterate-sync"])
def test_the_two_move_entries_exhaust_on_the_safe_designs(design, entry):
    """About 10 s each (write-clock-preempt on periodic 30 s): a bound the gate runs must be
    exhausted on the designs expected safe."""
    res = _run(entry, DESIGNS[design])
    assert res.ok and res.exhaustive


def test_wakeup_preemption_lets_a_woken_timer_take_over_where_no_preemption_is_left():
    """timer-mutex-before-bql needs the timer to run while the migration thread could go on: with
    no preemption it is out of reach (measured: 7,861 states exhausted), with the woken timer's
    switch free it is the 5-step lock-order violation again."""
    cfg = default_config("legacy")
    b = Bounds(guest_writes=1, device_writes=1, clock_moves=1, cancels=1, moves=1, preemptions=0,
               wakeup_preemption=True)
    res = explore(MUTANTS["timer-mutex-before-bql"], cfg, b)
    assert res.violation is not None and res.violation.invariant == "lock-order" and len(res.path) == 5
