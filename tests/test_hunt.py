"""The hunter: the machine runs for every shipped design on the ci profile, a user's own class is
hunted in two lines, failures report a readable step list and a replayable trace, and the
``dirtyproof hunt`` verb behaves (verdicts, exit status, bad input)."""
from __future__ import annotations

import pytest

from dirtyproof.cli.main import main
from dirtyproof.hunt import HuntViolation, ProfileError, get_settings, hunt, hunt_test, machine_for, profile_name
from dirtyproof.hunt.shrink import shrink, shrink_violation
from dirtyproof.hunt.strategies import is_long, sweep_arm
from dirtyproof.impl import World
from dirtyproof.checked import run, replay
from dirtyproof.impl.designs import DESIGNS, Legacy
from dirtyproof.impl.trace import Trace
from dirtyproof.mutants import MUTANTS

SMALL = 12   # examples for the smoke hunts in this file (the quality tier has the real budget)


class MyDesign(Legacy):
    """A user's design: legacy under another name."""

    name = "my-design"


class MyBrokenDesign(MUTANTS["period-popcount"]):
    """A user's design with a counting bug the hunter must report."""

    name = "my-broken-design"


# A user's own test file needs exactly these two lines (here a smoke sweep: 24 schedules hold
# every arm, swarm, plain and preemption; the quality tier hunts legacy with the full budget):
test_mine = hunt_test(MyDesign, max_examples=SMALL, schedules=24)
TestMine = machine_for(MyDesign, settings=get_settings("ci", max_examples=SMALL)).TestCase


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_machine_runs_each_shipped_design(name, tmp_path):
    """The ci-profile machine alone runs every shipped design; the safe ones report no violation."""
    rep = hunt(DESIGNS[name], examples=SMALL, profile="ci", schedules=0, trace_dir=str(tmp_path))
    assert rep.examples >= SMALL and rep.steps > 0 and rep.schedules == 0
    if name != "background-v1":
        assert rep.found is None, str(rep.found)


def test_ci_profile_is_deterministic(tmp_path):
    """Two ci hunts of the same design run the same schedules, examples and steps."""
    a = hunt(DESIGNS["legacy"], examples=5, profile="ci", schedules=3, trace_dir=str(tmp_path))
    b = hunt(DESIGNS["legacy"], examples=5, profile="ci", schedules=3, trace_dir=str(tmp_path))
    assert (a.schedules, a.examples, a.steps) == (b.schedules, b.examples, b.steps) == (3, a.examples, a.steps)
    assert a.examples >= 5


def test_sweep_comes_first_and_says_which_schedule(tmp_path):
    """A design the swarm schedules break is reported by the sweep, before any Hypothesis example,
    with the schedule that found it; the same sweep under another seed runs other schedules."""
    rep = hunt(MUTANTS["skip-slot-or"], examples=SMALL, trace_dir=str(tmp_path))
    assert rep.found_by == "sweep" and rep.examples == 0 and rep.first_failure_seconds is not None
    assert rep.found.sweep_index < rep.schedules and rep.found.sweep_seed == 0
    other = hunt(MUTANTS["skip-slot-or"], examples=SMALL, seed=7, trace_dir=str(tmp_path))
    assert other.found_by == "sweep" and other.found.sweep_seed == 7


def test_budget_alternates_sweeps_and_machine_rounds(tmp_path):
    """With a time budget, a safe design gets sweeps of new schedules and machine rounds until
    the time is spent."""
    # blocks of 3 swarm schedules (none of them a long named-world run); what is asserted (a
    # sweep and some examples) holds after one round of each, which a loaded machine fits in 3 s
    rep = hunt(DESIGNS["legacy"], budget=3, schedules=3, trace_dir=str(tmp_path))
    assert rep.found is None and rep.schedules >= 3 and rep.examples > 0


def test_user_failure_reports_steps_and_replayable_trace(tmp_path):
    """A failing user hunt raises a HuntViolation with the step list, layer diffs and a trace that
    ``dirtyproof replay`` reproduces."""
    test = hunt_test(MyBrokenDesign, trace_dir=str(tmp_path), max_examples=50)
    with pytest.raises(HuntViolation) as info:
        test()
    exc = info.value
    text = str(exc)
    assert "period-counter" in text and "counterexample" in text and "migration" in text
    assert "|" in text                       # what changed in which layer
    assert exc.trace_path is not None and exc.trace_path.exists()
    trace = Trace.load(exc.trace_path)
    assert trace.design.endswith(":MyBrokenDesign")
    _, res = replay(trace, MyBrokenDesign)
    assert res.violation is not None and res.violation.invariant == "period-counter"
    assert main(["replay", str(exc.trace_path)]) == 1


def test_profile_selection(monkeypatch):
    """Flag first, then the environment variable, then ci; an unknown name is an error."""
    monkeypatch.setenv("DIRTYPROOF_PROFILE", "dev")
    assert profile_name(None) == "dev"
    assert profile_name("thorough") == "thorough"
    monkeypatch.delenv("DIRTYPROOF_PROFILE")
    assert profile_name(None) == "ci"
    with pytest.raises(ProfileError):
        profile_name("nightly")


def test_cli_hunt_expected_unsafe_mutant_exits_0(tmp_path, capsys):
    """A mutant found as the manifest expects: exit 0, the counterexample and its trace path printed."""
    rc = main(["hunt", "--design", "period-popcount", "--examples", "30", "--trace-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "caught by period-counter" in out and "trace saved to" in out


def test_cli_hunt_user_design_with_violation_exits_1(tmp_path, capsys):
    """A user class without expectation must be safe: a violation makes the exit status 1."""
    rc = main(["hunt", "--design", "test_hunt:MyBrokenDesign", "--examples", "30",
               "--trace-dir", str(tmp_path)])
    assert rc == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["hunt", "--design", "no-such-design"], "unknown design"),
    (["hunt", "--design", "dirtyproof.impl.world:World"], "missing method"),
    (["hunt", "--profile", "nightly"], "unknown hunt profile"),
    (["hunt", "--examples", "many"], "not a number"),
])
def test_cli_hunt_bad_input_exits_2(argv, needle, capsys):
    """Bad input: one line on stderr, exit 2, no traceback."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _sweep_failure(design_cls, after: int = 0):
    """The first unshrunk failing swarm schedule of the seed-0 sweep from index ``after`` on
    (config, choices, invariant)."""
    for index in range(after, after + 200):
        if is_long(index):
            continue
        cfg, sched = sweep_arm(index, index, 300)
        res = run(World(cfg, design_cls), sched, keep_log=False)
        if res.violation is not None:
            return cfg, res.choices, res.violation.invariant
    raise AssertionError(f"no swarm schedule from {after} on breaks {design_cls.name}")


def test_shrink_is_deterministic_and_keeps_the_invariant():
    """Delta debugging a failing schedule twice gives the same short schedule, every choice of it
    enabled, violating the same invariant at its last step when every invariant is checked."""
    cls = MUTANTS["iterate-sync-in-mutex"]
    cfg, choices, inv = _sweep_failure(cls)
    a = shrink(cls, cfg, choices, inv)
    b = shrink(cls, cfg, choices, inv)
    assert a.choices == b.choices and a.fixpoint
    assert a.length < len(choices) // 2
    res = run(World(cfg, cls), a.choices)          # raises BadChoice if a choice were not enabled
    assert res.violation.invariant == inv and res.violation_step == a.length - 1


def test_shrink_budget_is_reported():
    """A shrink cut by its replay budget still returns a failing schedule and says it stopped early."""
    cls = MUTANTS["read-before-clear"]
    cfg, choices, inv = _sweep_failure(cls)
    r = shrink(cls, cfg, choices, inv, max_replays=10)
    assert not r.fixpoint and r.replays <= 10 and r.length <= len(choices)
    assert "budget spent" in r.summary()
    assert run(World(cfg, cls), r.choices).violation.invariant == inv


def test_shrunk_sweep_trace_replays_from_the_cli(tmp_path):
    """The shrunk counterexample's trace reproduces with ``dirtyproof replay`` (exit 1: violation)."""
    cls = MUTANTS["read-before-clear"]
    cfg, choices, inv = _sweep_failure(cls)
    found = shrink_violation(_as_violation(cls, cfg, choices), trace_dir=str(tmp_path))
    assert found.invariant == inv and found.report and "counterexample" in str(found)
    assert main(["replay", str(found.trace_path)]) == 1


def _as_violation(cls, cfg, choices):
    """A HuntViolation for a failing schedule (as the sweep builds it)."""
    res = run(World(cfg, cls), choices, keep_log=False)
    return HuntViolation(cls, cls.name, cfg, res.choices, [], res.violation, res.violation_step)
