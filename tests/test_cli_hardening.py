"""Issue 10's hardening beyond the issue's own list (that list is rerun case by case in
tests/test_cli_issue10.py): every bad input is one line and exit 2, no vacuous pass, no hang,
a design's crash names the user's class, file and line, an internal error is exit 3 with a file.

Most run the command line in-process (``dirtyproof.cli.main.main(argv)``) for speed; the ones
that need a process pool or a fresh interpreter run it as a subprocess."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dirtyproof.cli.main import main

HERE = Path(__file__).parent
USER = str(HERE / "cli_user_designs.py")


def dp(capsys, *argv):
    """Run the command line in-process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def one_error_line(err: str) -> str:
    """The stderr of a bad input: exactly one line, the error."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dirtyproof: error: "), err
    return lines[0]


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("DIRTYPROOF_TRACE_DIR", "DIRTYPROOF_BULK", "DIRTYPROOF_STEP_TIMEOUT", "DIRTYPROOF_PROFILE"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------------------------------
# exit statuses and usage


def test_help_documents_the_exit_statuses(capsys):
    for argv in (["--help"], ["check", "--help"], ["hunt", "--help"]):
        code, out, _ = dp(capsys, *argv)
        assert code == 0
        for status in ("0 ", "1 ", "2 ", "3 ", "130"):
            assert f"\n  {status}" in out, (argv, status)


def test_internal_error_is_exit_3_with_the_traceback_in_a_file(capsys, monkeypatch):
    import dirtyproof.cli.main as cli

    # a verb that raises from no user code (a builtin: int(args) is a TypeError) is dirtyproof's bug
    monkeypatch.setattr(cli, "cmd_designs", int)
    code, _, err = dp(capsys, "designs")
    assert code == 3
    line = one_error_line(err)
    assert "internal error" in line and "TypeError" in line
    path = line.split("full traceback in ")[1].split(" ")[0]
    assert "Traceback" in Path(path).read_text()
    os.unlink(path)


# ---------------------------------------------------------------------------------------------
# a design's own crash: exit 2, naming the user's class, file and line


# ---------------------------------------------------------------------------------------------
# output paths checked before any work

@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    return f


def test_output_paths_are_checked_first(capsys, monkeypatch, a_file, tmp_path):
    cases = [
        ["run", "--trace", str(tmp_path)],                         # a folder where a file goes
        ["run", "--trace", f"{a_file}/x.json"],                    # a file where a folder goes
        ["prove", "--design", "legacy", "--smt2", str(a_file)],
        ["prove", "--design", "legacy", "--trace-dir", str(a_file)],
        ["prove", "--design", "legacy", "--traces", str(a_file)],  # the old name, still checked
        ["check", "--trace-dir", str(a_file)],
        ["check", "--junit", str(tmp_path)],
        ["check", "--json", f"{a_file}/r.json"],
        ["hunt", "--design", "legacy", "--trace-dir", str(a_file)],
        ["spec", "--output", str(tmp_path)],
        ["spec", "--output", f"{a_file}/inv.md"],
        ["prove", "--design", "legacy", "--smt2", "/proc/dirtyproof-no/q"],   # cannot be created
        ["run", "--trace", "/proc/dirtyproof-no.json"],
    ]
    for argv in cases:
        code, _, err = dp(capsys, *argv)
        assert code == 2, argv
        one_error_line(err)
    monkeypatch.setenv("DIRTYPROOF_TRACE_DIR", str(a_file))
    code, _, err = dp(capsys, "hunt", "--design", "legacy")
    assert code == 2 and "DIRTYPROOF_TRACE_DIR" in one_error_line(err)


def test_output_path_check_leaves_nothing_behind(capsys, tmp_path):
    code, _, _ = dp(capsys, "prove", "--design", "nope", "--smt2", str(tmp_path / "a" / "b"))
    assert code == 2
    assert not (tmp_path / "a").exists()


# ---------------------------------------------------------------------------------------------
# nothing passes vacuously

@pytest.mark.parametrize("argv", [          # beyond the issue's own cases (tests/test_cli_issue10.py)
    ["check", "--hunt-budget", "nan"],
    ["check", "--design", ""],
    ["prove", "--design", ""],
])
def test_a_budget_or_name_that_checks_nothing_is_bad_input(capsys, argv):
    code, _, err = dp(capsys, *argv)
    assert code == 2, argv
    one_error_line(err)


def test_bad_step_timeout_is_bad_input(capsys, monkeypatch):
    monkeypatch.setenv("DIRTYPROOF_STEP_TIMEOUT", "soon")
    code, _, err = dp(capsys, "designs")
    assert code == 2 and "DIRTYPROOF_STEP_TIMEOUT" in one_error_line(err)


def _trace(tmp_path, capsys, **change):
    path = tmp_path / "t.json"
    code, _, _ = dp(capsys, "run", "--steps", "50", "--trace", str(path))
    assert code == 0
    data = json.loads(path.read_text())
    data.update(change)
    for k, v in list(data.items()):
        if v is ...:
            del data[k]
    path.write_text(json.dumps(data))
    return path


def test_replay_of_an_incomplete_run_does_not_say_no_loss_ok(capsys, tmp_path):
    path = _trace(tmp_path, capsys)
    data = json.loads(path.read_text())
    data["steps"] = data["steps"][:10]
    path.write_text(json.dumps(data))
    code, out, _ = dp(capsys, "replay", str(path))
    assert "not completed" in out
    assert "no-loss                  ok" not in out and "no-loss                  not checked" in out


def test_replay_reproduces_a_progress_violation(capsys, tmp_path):
    path = tmp_path / "live.json"
    code, out, _ = dp(capsys, "run", "--design", f"{USER}:Livelock", "--steps", "20", "--trace", str(path))
    assert code == 1 and "progress" in out
    code, out, _ = dp(capsys, "replay", str(path), "--tail", "1")
    assert code == 1 and "reproduced" in out and "NOT reproduced" not in out


# ---------------------------------------------------------------------------------------------
# one name and one meaning per concept


def test_design_by_file_path(capsys):
    code, out, _ = dp(capsys, "run", "--design", f"{USER}:Reorder", "--steps", "50")
    assert code == 0 and "completed" in out
    code, _, err = dp(capsys, "run", "--design", f"{HERE}/no_such_file.py:X")
    assert code == 2 and "no such design file" in one_error_line(err)


# ---------------------------------------------------------------------------------------------
# prove and check on a design without an encoding, and on a user's encoding

def test_prove_says_in_one_line_a_design_has_no_encoding(capsys):
    code, out, err = dp(capsys, "prove", "--design", f"{USER}:Reorder", "--config", "manual/mixed")
    assert code == 0
    lines = [ln for ln in out.splitlines() if "no per-page encoding" in ln]
    assert len(lines) == 1 and "random runs" in lines[0] and "NOT PROVED" in lines[0]


def test_a_mutant_wearing_its_parents_encoding_fails_loudly(capsys):
    code, out, _ = dp(capsys, "prove", "--design", f"{USER}:WornEncoding", "--config", "manual/mixed")
    assert code == 1
    assert "ENCODING MISMATCH" in out and "step" in out and "SAFE" not in out


def test_check_a_user_design_in_process_table_legend_junit_json(capsys, tmp_path):
    junit, js = tmp_path / "r.xml", tmp_path / "r.json"
    code, out, err = dp(capsys, "check", "--design", f"{USER}:AVeryLongUserDesignNameThatGoesOnAndOn",
                        "--jobs", "1", "--hunt-budget", "0.5", "--junit", str(junit), "--json", str(js))
    assert code == 0, out
    assert "legend:" in out and "no per-page encoding" in out
    rows = [ln for ln in out.splitlines() if "AVeryLong" in ln and "  prover " in ln]
    assert len(rows) == 6 and len({ln.index(" prover ") for ln in rows}) == 1
    assert err.startswith("check: ")           # progress from the start
    import xml.etree.ElementTree as ET
    cases = ET.parse(junit).getroot().findall(".//testcase")
    engines = {c.get("classname").rsplit(".", 1)[1] for c in cases}
    assert {"prover", "runs", "counting", "hunt", "verdict"} <= engines
    data = json.loads(js.read_text())
    assert data["ok"] is True and len(data["results"]) == len(cases)
    # the reports say which hunt budget was used (here the wall-clock one asked for)
    assert data["hunt_budget"] == {"schedules": None, "examples": None, "seconds": 0.5}
    prop = ET.parse(junit).getroot().find("./properties/property[@name='hunt_budget']")
    assert prop is not None and "0.5 s hunt" in prop.get("value")


def test_check_worn_encoding_reports_the_mismatch_as_failures(capsys, tmp_path):
    junit = tmp_path / "r.xml"
    code, out, _ = dp(capsys, "check", "--design", f"{USER}:WornEncoding", "--jobs", "1",
                      "--hunt-budget", "0.5", "--junit", str(junit))
    assert code == 1 and "mismatch" in out
    text = junit.read_text()
    assert "<failure" in text and "does not conform" in text


# ---------------------------------------------------------------------------------------------
# Z3: an interrupted query is Ctrl-C, never "unknown"

def test_an_interrupted_z3_query_raises_keyboardinterrupt():
    import signal
    import threading
    import time

    import z3

    from dirtyproof.cli.interrupt import ctrl_c_stops
    from dirtyproof.proofs.solver import QueryRunner

    x = [z3.BitVec(f"x{i}", 64) for i in range(6)]
    hard = [x[0] * x[1] * x[2] == x[3] * x[4] * x[5] + 12345, z3.UDiv(x[0], x[1] + 1) == x[2] * 7 + 3,
            x[0] * x[0] * x[0] == x[5] * x[5] + 991]
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), ctrl_c_stops():
        QueryRunner(timeout_ms=20000).check("hard", *hard)
    assert time.perf_counter() - t < 2.0


def test_the_step_timer_does_not_outlive_the_command():
    """A fresh interpreter that timed steps exits with its own status, not "Alarm clock" (142)."""
    env = {**os.environ, "DIRTYPROOF_STEP_TIMEOUT": "0.3"}
    r = subprocess.run([sys.executable, "-m", "dirtyproof.cli", "hunt", "--design", f"{USER}:Crashy",
                        "--schedules", "0", "--examples", "3"], capture_output=True, text=True, timeout=120, env=env)
    for saved in re.findall(r"full traceback in (\S+)", r.stderr):
        Path(saved).unlink(missing_ok=True)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Crashy" in r.stderr.splitlines()[-1]


def test_hunt_says_machine_runs_when_hypothesis_ran_more_than_asked():
    from types import SimpleNamespace

    from dirtyproof.cli.hunt_cmd import _examples
    assert _examples(SimpleNamespace(examples=693), SimpleNamespace(examples=500)) == \
        "693 machine runs (500 valid examples asked)"
    assert _examples(SimpleNamespace(examples=12), SimpleNamespace(examples=None)) == "12 examples"


# ---------------------------------------------------------------------------------------------
# conform's bad input, without a QEMU: refused before the guest is built or QEMU started

@pytest.mark.parametrize("argv, says", [
    (["--qemu", "/nope/qemu-system-x86_64"], "no such QEMU binary"),
    (["--qemu", "{file}"], "not executable"),
    (["--qemu", "{tmp}"], "folder"),
    (["--qemu", "no-such-qemu-anywhere"], "on PATH"),
    (["--qemu-root", "{tmp}"], "--qemu-root"),
    (["--qemu", "/bin/true", "--save-qemu-trace", "{tmp}"], "--save-qemu-trace"),
    (["--qemu", "/bin/true", "--save-samples", "{file}/s.jsonl"], "--save-samples"),
    (["--qemu", "/bin/true", "--hot-mib", "0"], "hot set"),
    (["--hot-mib", "many"], "--hot-mib"),
    (["--time-limit", "-1"], "--time-limit"),
    (["--samples", "{file}"], "--samples needs --qemu-trace"),
    (["--qemu-trace", "{file}"], ""),
    (["--trace", "{file}"], "is called --qemu-trace now"),            # run's --trace writes, this read
    (["--save-trace", "{file}"], "is called --save-qemu-trace now"),
])
def test_conform_bad_input_without_qemu(capsys, a_file, tmp_path, argv, says):
    real = [a.replace("{file}", str(a_file)).replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = dp(capsys, "conform", *real)
    assert code == 2, (argv, err)
    assert says in one_error_line(err)
    assert not list(tmp_path.glob("dirtyproof-conform-*"))


# ---------------------------------------------------------------------------------------------
# the step limit outside a main thread (SIGALRM never reaches one): impl/watchdog._ThreadWatch

def _run_in_thread(cls, steps=400):
    """Run ``cls`` on a random schedule in a thread of its own: (what ended it, message, seconds)."""
    import threading
    import time

    from dirtyproof.checked import run
    from dirtyproof.impl import Config
    from dirtyproof.impl.scheduler import RandomScheduler
    from dirtyproof.impl.world import World

    out = []

    def go():
        t = time.perf_counter()
        try:
            res = run(World(Config(), cls), RandomScheduler(0, steps))
            out.append(("completed" if res.completed else "not completed", "", time.perf_counter() - t))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            out.append((type(exc).__name__, str(exc), time.perf_counter() - t))
    th = threading.Thread(target=go, daemon=True)
    th.start()
    th.join(30)
    assert out, "the thread's run did not end: the step limit does not hold in a thread"
    return out[0]


def test_a_step_that_never_yields_in_a_thread_is_stopped(monkeypatch):
    monkeypatch.setenv("DIRTYPROOF_STEP_TIMEOUT", "0.3")
    from dirtyproof.checked import resolve
    kind, message, seconds = _run_in_thread(resolve(f"{USER}:Hang"))
    assert kind == "StepTimeout" and "did not yield within 0.3 s" in message
    assert "ram_save_iterate" in message and "cli_user_designs.py" in message and seconds < 5
    kind, _, _ = _run_in_thread(resolve(f"{USER}:Reorder"), steps=2000)     # a sound design is not stopped
    assert kind == "completed"


def test_check_shows_a_long_detail_by_its_head_and_its_tail():
    """A long counterexample in check's table keeps its first steps and its last ones (where a race
    ends, the lost write and the trace), with one line saying how many were left out."""
    from dirtyproof.cli.check_cmd import DETAIL_HEAD, DETAIL_TAIL, clip_lines

    short = [f"l{i}" for i in range(DETAIL_HEAD + DETAIL_TAIL + 1)]
    assert clip_lines(short) == short
    long = [f"l{i}" for i in range(1000)]
    out = clip_lines(long)
    assert out[:DETAIL_HEAD] == long[:DETAIL_HEAD] and out[-DETAIL_TAIL:] == long[-DETAIL_TAIL:]
    assert len(out) == DETAIL_HEAD + DETAIL_TAIL + 1
    assert f"{1000 - DETAIL_HEAD - DETAIL_TAIL} lines left out" in out[DETAIL_HEAD]
