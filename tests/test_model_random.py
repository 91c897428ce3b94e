"""Seeded random schedules for every design, KVM mode and mixed geometry; traces that replay to
the same state and verdict; and the ``run`` / ``replay`` / ``designs`` command line."""
import json

import pytest

from dirtyproof.cli.main import main
from dirtyproof.impl import BlockSpec, Config, Geometry, World
from dirtyproof.impl.config import KVM_MODES
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.checked import run, replay
from dirtyproof.impl.trace import Trace, TraceError
from dirtyproof.spec import applicable

GEOMETRIES = {
    # one fast-path block and one slow-path block after a gap, chunks of 4 pages
    "simple": Geometry.simple(aligned=1, unaligned=1, pages=64, shift=2),
    # several memslots per block, a gap, a slow block between two fast ones, chunks of 8 pages
    "slots": Geometry((BlockSpec("ram0", 0, 128, slots=2), BlockSpec("odd", 133, 37, slots=2),
                       BlockSpec("ram1", 192, 64)), clear_bmap_shift=3),
}
SAFE = ("legacy", "periodic", "iterate-sync")


def random_run(design, mode, geometry, seed, steps=800):
    """A fresh world on a named geometry run to completion by a seeded random schedule."""
    w = World(Config(geometry=GEOMETRIES[geometry], kvm_mode=mode), DESIGNS[design])
    return w, run(w, RandomScheduler(seed, steps), keep_log=False)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("mode", KVM_MODES)
@pytest.mark.parametrize("design", SAFE)
def test_safe_designs_complete_clean(design, mode, geometry):
    for seed in (1, 2):
        w, res = random_run(design, mode, geometry, seed)
        assert res.ok, f"seed {seed}: {res.violation} at step {res.violation_step}"
        assert res.completed and w.migration_done()
        guest = w.page_block >= 0
        assert (w.dest_version[guest] == w.src_version[guest]).all()
        assert res.pages_sent >= w.geometry.total_pages and res.syncs >= 2
        assert res.checked == tuple(inv.id for inv in applicable(w.design))


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("mode", KVM_MODES)
def test_background_v1_completes_or_loses_a_page_never_crashes(mode, geometry):
    for seed in (1, 2):
        w, res = random_run("background-v1", mode, geometry, seed)
        if res.ok:
            assert res.completed
        else:
            # the seed series' known slow-path bug: a page sent after a background sync is dropped
            assert res.violation.invariant in ("coverage", "no-loss"), res.violation
            assert res.violation.page is not None


def test_background_v1_slow_path_bug_is_found_in_legacy_kvm_mode():
    """Not a check that cannot fail: this seed reproduces the v1 loss (shadow_bmap is OR-ed, never
    cleared by a later background sync, so a re-dirtied sent page is dropped from iter_bmap)."""
    _, res = random_run("background-v1", "legacy", "simple", 0, steps=1500)
    assert res.violation is not None and res.violation.invariant == "coverage"
    assert 69 <= res.violation.page < 104                   # the slow-path block odd0


def test_random_runs_include_cancel_and_restart():
    restarted = 0
    for seed in range(12):
        w, res = random_run("legacy", "manual", "simple", seed, steps=1500)
        assert res.ok and res.completed
        restarted += w.attempts > 1
        if w.attempts > 1:
            guest = w.page_block >= 0
            assert (w.dest_version[guest] == w.src_version[guest]).all()
    assert restarted >= 3


def test_random_runs_are_deterministic_per_seed():
    _, a = random_run("periodic", "manual", "slots", 5)
    _, b = random_run("periodic", "manual", "slots", 5)
    _, c = random_run("periodic", "manual", "slots", 6)
    assert a.choices == b.choices and a.choices != c.choices


# ---------------------------------------------------------------------------------------------
# traces
def final_state(w):
    """Everything a replay must reproduce: layers, counters, versions, clock, attempts."""
    return (w.snapshot(), w.src_version.tolist(), w.dest_version.tolist(), w.last_read.tolist(),
            w.steps, w.clock_ms, w.attempts, w.migration_done())


@pytest.mark.parametrize("design, mode, seed", [("periodic", "initially_set", 3),
                                                 ("background-v1", "legacy", 0),
                                                 ("iterate-sync", "manual", 4)])
def test_trace_save_load_replay_reproduces_state_and_verdict(tmp_path, design, mode, seed):
    cfg = Config(geometry=GEOMETRIES["simple"], kvm_mode=mode)
    w = World(cfg, DESIGNS[design])
    res = run(w, RandomScheduler(seed, 1500))
    path = Trace.from_result(design, cfg, res, seed=seed).save(tmp_path / "sub" / "t.json")
    trace = Trace.load(path)
    assert trace.config == cfg and trace.seed == seed and trace.steps == res.choices
    w2, res2 = replay(trace)
    assert final_state(w2) == final_state(w)
    assert (res2.violation, res2.violation_step, res2.completed) == \
        (res.violation, res.violation_step, res.completed)
    assert [r.label for r in res2.log] == [r.label for r in res.log] == trace.labels
    if res.violation is not None:
        assert trace.violation["invariant"] == res.violation.invariant
        assert trace.violation["step"] == res.violation_step


def write(tmp_path, data):
    """Write ``data`` (a string, or JSON of an object) to a trace file; its path."""
    p = tmp_path / "t.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


GOOD = {"dirtyproof_trace": 1, "design": "legacy", "config": {}, "steps": [["mgmt", "start"]]}


@pytest.mark.parametrize("data, problem", [
    ("{not json", "is not JSON"),
    ({**GOOD, "dirtyproof_trace": 2}, "not a dirtyproof trace"),
    ([1, 2], "not a dirtyproof trace"),
    ({**GOOD, "design": ""}, "'design' must be a design name"),
    ({**GOOD, "steps": {"a": 1}}, "'steps' must be a list"),
    ({**GOOD, "steps": [["mgmt", "start"], ["vcpu0"]]}, "step 1 is not"),
    ({**GOOD, "steps": [[3, None]]}, "step 0 is not"),
    ({**GOOD, "steps": [["vcpu0", 1.5]]}, "step 0 is not"),
    ({**GOOD, "config": {"kvm_mode": "ring"}}, "bad config: unknown KVM mode"),
    ({**GOOD, "config": {"bogus": 1}}, "bad config: unknown config key"),
    ({**GOOD, "config": {"geometry": {"blocks": [{"name": "a", "offset": 0, "pages": 0}]}}},
     "bad config: RAMBlock 'a' is empty"),
    ({**GOOD, "model": 1}, "recorded by model version 1, and this dirtyproof's model is version 2"),
    ({**GOOD, "model": "2"}, "'model' must be an integer"),
])
def test_malformed_trace_files_raise_trace_error(tmp_path, data, problem):
    with pytest.raises(TraceError, match=problem):
        Trace.load(write(tmp_path, data))


def test_missing_trace_file(tmp_path):
    with pytest.raises(TraceError, match="no such trace file"):
        Trace.load(tmp_path / "nope.json")


def test_trace_whose_step_is_not_enabled_does_not_replay(tmp_path):
    trace = Trace.load(write(tmp_path, {**GOOD, "steps": [["mgmt", "start"], ["timer", None]], "model": 2}))
    with pytest.raises(TraceError, match="does not replay: step 1: thread 'timer' cannot step now$"):
        replay(trace)


def test_a_trace_without_a_model_version_replays_and_its_failure_names_the_likely_cause(tmp_path):
    """Traces recorded before the model version was written carry none: they are replayed (most
    replay alike), and one that does not replay says it may come from the older model."""
    from dirtyproof.impl.trace import MODEL_VERSION
    ok = Trace.load(write(tmp_path, {**GOOD, "steps": [["mgmt", "start"], ["migration", None]]}))
    assert ok.model is None and replay(ok)[0].steps == 2
    assert Trace.from_json(ok.to_json()).model == MODEL_VERSION    # written with this version
    old = Trace.load(write(tmp_path, {**GOOD, "steps": [["mgmt", "start"], ["timer", None]]}))
    with pytest.raises(TraceError, match="names no model version: it was recorded before 2026-12-03"):
        replay(old)


# ---------------------------------------------------------------------------------------------
# command line
def cli(capsys, *argv):
    """Run the CLI; return (exit status, stdout, stderr). argparse errors exit via SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_designs_lists_the_shipped_ones(capsys):
    code, out, _ = cli(capsys, "designs")
    assert code == 0
    lines = out.strip().splitlines()
    n = len(DESIGNS)
    assert [ln.split()[0] for ln in lines[:n]] == list(DESIGNS)
    assert all(len(ln.split()) > 3 for ln in lines[:n])


def test_a_rule_that_never_mattered_in_a_run_is_reported_so_not_as_kept(capsys):
    """QEMU's rules are evaluated only where they can matter: a run in a world where a rule never
    could (the dirty ring's rules without rings, clear-before-read in legacy mode) says so,
    while a rule that did matter and held says ``ok``."""
    code, out, _ = cli(capsys, "run", "--design", "legacy", "--seed", "3", "--steps", "400", "--kvm-mode", "legacy")
    assert code == 0
    assert "  ring-reset-after-record  never mattered (a rule, evaluated only at a KVM_RESET_DIRTY_RINGS" in out
    assert "  clear-before-read        never mattered (a rule, evaluated only while the VM runs" in out
    assert "  dirty-pages-count        ok" in out and "  coverage                 ok" in out
    code, out, _ = cli(capsys, "run", "--design", "legacy", "--seed", "3", "--steps", "400", "--kvm-mode", "manual")
    assert code == 0 and "  clear-before-read        ok" in out


def test_cli_run_clean_saves_a_trace_that_replays(capsys, tmp_path):
    trace = tmp_path / "run.json"
    code, out, err = cli(capsys, "run", "--design", "periodic", "--seed", "3", "--steps", "400",
                         "--kvm-mode", "initially_set", "--trace", str(trace))
    assert code == 0 and err == ""
    assert out.startswith("design periodic: ") and "completed" in out
    assert "  coverage                 ok" in out and "VIOLATION" not in out
    assert f"trace saved to {trace}" in out
    code, out2, _ = cli(capsys, "replay", str(trace))
    assert code == 0 and out2.splitlines()[0] == out.splitlines()[0]


def test_cli_run_violation_exits_1_and_names_invariant_page_step(capsys, tmp_path):
    trace = tmp_path / "bad.json"
    code, out, _ = cli(capsys, "run", "--design", "background-v1", "--seed", "0", "--steps", "1500",
                       "--kvm-mode", "legacy", "--trace", str(trace))
    assert code == 1
    assert "  coverage                 VIOLATED" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("VIOLATION of coverage at step "))
    assert " page " in line
    code, out, _ = cli(capsys, "replay", str(trace))
    assert code == 1 and "recorded violation coverage at step" in out and "reproduced" in out
    assert "NOT reproduced" not in out


@pytest.mark.parametrize("argv, problem", [
    (("run", "--design", "nonesuch"), "unknown design 'nonesuch'"),
    (("run", "--design", "nomodule_xyz:Cls"), "cannot import module"),
    (("run", "--steps", "many"), "not a number: 'many'"),
    (("run", "--seed", "-4"), "must be >= 0"),
    (("run", "--kvm-mode", "ring"), "invalid choice"),
    (("run", "--geometry", "round"), "invalid choice"),
    (("frobnicate",), "invalid choice"),
])
def test_cli_bad_input_is_one_line_exit_2(capsys, argv, problem):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("dirtyproof: error: ") and problem in err


def test_cli_replay_malformed_or_missing_is_one_line_exit_2(capsys, tmp_path):
    code, _, err = cli(capsys, "replay", str(write(tmp_path, "[]")))
    assert code == 2 and err.count("\n") == 1 and "not a dirtyproof trace" in err
    code, _, err = cli(capsys, "replay", str(tmp_path / "missing.json"))
    assert code == 2 and err.count("\n") == 1 and "no such trace file" in err
    code, _, err = cli(capsys, "replay", str(write(tmp_path, {**GOOD, "design": "nonesuch"})))
    assert code == 2 and err.count("\n") == 1 and "unknown design 'nonesuch'" in err


def test_cli_config_file_errors(capsys, tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text('{"burst": 0}')
    code, _, err = cli(capsys, "run", "--config", str(bad))
    assert code == 2 and "bad config: burst must be at least 1" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "run", "--config", str(tmp_path / "none.json"))
    assert code == 2 and "no such config file" in err
