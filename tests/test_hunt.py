"""The hunter: the machine runs for every shipped design on the ci profile, a user's own class is
hunted in two lines, failures report a readable step list and a replayable trace, and the
``dirtyproof hunt`` verb behaves (verdicts, exit status, bad input)."""
from __future__ import annotations

import pytest

from dirtyproof.cli.main import main
from dirtyproof.hunt import HuntViolation, ProfileError, get_settings, hunt, hunt_test, machine_for, profile_name
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


# A user's own test file needs exactly these two lines:
test_mine = hunt_test(MyDesign, max_examples=SMALL)
TestMine = machine_for(MyDesign, settings=get_settings("ci", max_examples=SMALL)).TestCase


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_machine_runs_each_shipped_design(name, tmp_path):
    """The ci-profile machine runs every shipped design; the safe ones report no violation."""
    rep = hunt(DESIGNS[name], examples=SMALL, profile="ci", trace_dir=str(tmp_path))
    assert rep.examples >= SMALL and rep.steps > 0
    if name != "background-v1":
        assert rep.found is None, str(rep.found)


def test_ci_profile_is_deterministic(tmp_path):
    """Two ci hunts of the same design run the same examples and steps."""
    a = hunt(DESIGNS["legacy"], examples=5, profile="ci", trace_dir=str(tmp_path))
    b = hunt(DESIGNS["legacy"], examples=5, profile="ci", trace_dir=str(tmp_path))
    assert (a.examples, a.steps) == (b.examples, b.steps)


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
    _, res = trace.replay(MyBrokenDesign)
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
