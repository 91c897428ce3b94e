"""Issue 10, rerun as scripted cases: every invocation the issue lists (tracebacks, vacuous passes,
hangs, Ctrl-C, design errors named wrongly, the "smaller" list) ends as its Deliver section says.

One table, one check. A case gives the issue's words, the argv (with placeholders for files the
case prepares), the exit status Deliver asks for and the words the outcome must hold, and how
long it may take. :func:`ends_as_delivered` is the same for all: the status; never a traceback on
stderr; for bad input (2) exactly one error line, the last one, after at most progress lines;
for 0 and 1 the words on stdout; within the time allowed, counted in CPU seconds of the command
(and of its worker processes), so that a machine loaded by other work does not fail a case. The Ctrl-C cases are in
``tests/test_cli_ctrlc.py`` (each verb within a second; ten of ten in the slow tier); the last
tests here show the table's check rejects each way a case could end wrongly."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dirtyproof.cli.main import main

HERE = Path(__file__).parent
USER = str(HERE / "cli_user_designs.py")
REPO = HERE.parent
PROGRESS = ("hunting ", "  [", "check: ", "prove: ", "run: ", "replay: ", "explore: ", "  ... ")


@dataclass(frozen=True)
class Case:
    """One invocation of the issue and how it must end."""

    issue: str                      # the issue's words for the case
    argv: tuple[str, ...]           # placeholders: {tmp} {file} {trace} {USER} ... (see _files)
    status: int                     # the exit status Deliver asks for
    says: tuple[str, ...] = ()      # words of the error line (status 2) or of stdout (0, 1)
    env: dict = field(default_factory=dict)
    within: float = 20.0            # CPU seconds (the issue's hangs and late failures took minutes)
    fresh: bool = False             # run in a fresh interpreter (a process pool; a hang ends in a timeout)


CASES = [
    # -- tracebacks, exit 1 ----------------------------------------------------------------------
    Case("check --design module:Class for a design that overrides a method (process pool)",
         ("check", "--design", "cli_user_designs:Reorder", "--jobs", "2", "--hunt-budget", "0.5"), 0,
         ("all verdicts as expected",), env={"PYTHONPATH": str(HERE)}, within=120, fresh=True),
    Case("run --trace a folder", ("run", "--trace", "{tmp}"), 2, ("--trace", "folder")),
    Case("run --trace under a file", ("run", "--trace", "{file}/x.json"), 2, ("--trace", "not a folder")),
    Case("run --trace unwritable", ("run", "--trace", "/proc/dirtyproof-no.json"), 2, ("--trace", "cannot write")),
    Case("prove --smt2 an existing file", ("prove", "--design", "legacy", "--smt2", "{file}"), 2,
         ("--smt2", "not a folder"), within=5),
    Case("prove --smt2 unwritable", ("prove", "--design", "legacy", "--smt2", "/proc/dirtyproof-no/q"), 2,
         ("--smt2", "cannot write"), within=5),
    Case("hunt --trace-dir a file", ("hunt", "--design", "legacy", "--trace-dir", "{file}"), 2,
         ("--trace-dir", "not a folder"), within=5),
    Case("DIRTYPROOF_TRACE_DIR a file", ("hunt", "--design", "legacy"), 2, ("DIRTYPROOF_TRACE_DIR",),
         env={"DIRTYPROOF_TRACE_DIR": "{file}"}, within=5),
    Case("check --traces a file", ("check", "--traces", "{file}"), 2, ("--trace-dir", "not a folder"), within=5),
    Case("prove --traces a file", ("prove", "--design", "legacy", "--traces", "{file}"), 2,
         ("--trace-dir", "not a folder"), within=5),
    Case("check --junit a folder", ("check", "--junit", "{tmp}"), 2, ("--junit", "folder"), within=5),
    Case("check --json under a file", ("check", "--json", "{file}/r.json"), 2, ("--json",), within=5),
    Case("spec --output a folder", ("spec", "--output", "{tmp}"), 2, ("--output", "folder")),
    Case("spec --output under a file", ("spec", "--output", "{file}/inv.md"), 2, ("--output",)),
    Case("explore --trace-dir a file", ("explore", "--trace-dir", "{file}"), 2, ("--trace-dir",), within=5),
    Case("conform --save-samples a folder", ("conform", "--qemu", "/bin/true", "--save-samples", "{tmp}"), 2,
         ("--save-samples", "folder"), within=5),
    Case("hunt --examples 0 (Hypothesis InvalidArgument)", ("hunt", "--examples", "0"), 2, ("--examples",)),
    Case("a step that yields a non-string: run", ("run", "--design", "{USER}:NonString"), 2,
         ("broken design", "yielded 42", "ram_save_iterate")),
    Case("a step that yields a non-string: hunt (its event filter crashed after 14 s)",
         ("hunt", "--design", "{USER}:NonString", "--examples", "3", "--schedules", "2", "--trace-dir", "{tmp}/t"),
         2, ("broken design", "yielded 42", "full traceback in ")),
    Case("a design whose attach() raises: run", ("run", "--design", "{USER}:AttachCrash"), 2,
         ("AttachCrash", "in attach", "cli_user_designs.py:")),
    Case("a design whose attach() raises: hunt",
         ("hunt", "--design", "{USER}:AttachCrash", "--examples", "2", "--schedules", "1", "--trace-dir", "{tmp}/t"),
         2, ("AttachCrash", "in attach")),
    Case("a config with one 2^40-page block (numpy MemoryError)", ("run", "--config", "{huge}"), 2, ("pages",)),
    # -- vacuous passes, exit 0 ------------------------------------------------------------------
    Case("hunt --budget 0", ("hunt", "--budget", "0"), 2, ("--budget",)),
    Case("check --hunt-budget 0", ("check", "--hunt-budget", "0"), 2, ("--hunt-budget", "vacuously")),
    Case("check --hunt-budget -1", ("check", "--hunt-budget", "-1"), 2, ("--hunt-budget",)),
    Case("check --hunt-schedules 0", ("check", "--hunt-schedules", "0"), 2, ("--hunt-schedules", "vacuously")),
    Case("check --hunt-examples 0", ("check", "--hunt-examples", "0"), 2, ("--hunt-examples", "vacuously")),
    Case("check --hunt-schedules 0 --hunt-examples 0 (checks nothing)",
         ("check", "--hunt-schedules", "0", "--hunt-examples", "0"), 2, ("--hunt-schedules", "vacuously")),
    Case("check --hunt-schedules -3", ("check", "--hunt-schedules", "-3"), 2, ("--hunt-schedules", ">= 1")),
    Case("check --hunt-examples x", ("check", "--hunt-examples", "x"), 2, ("--hunt-examples", "'x'")),
    Case("check --hunt-schedules 2.5", ("check", "--hunt-schedules", "2.5"), 2, ("--hunt-schedules",)),
    Case("check with both budgets (work and seconds)", ("check", "--hunt-budget", "2", "--hunt-examples", "5"), 2,
         ("--hunt-budget", "choose one budget")),
    Case("replay of a trace whose recorded violation is NOT reproduced", ("replay", "{unreproduced}"), 1,
         ("NOT reproduced",)),
    Case("replay of a trace with no config (silently the default)", ("replay", "{noconfig}"), 2, ("config",)),
    Case("hunt --design '' (hunts everything)", ("hunt", "--design", ""), 2, ("design",)),
    Case("--mutants with --design (ignored)", ("hunt", "--design", "legacy", "--mutants"), 2, ("--mutants",)),
    Case("DIRTYPROOF_BULK=turbo (ignored)", ("designs",), 2, ("turbo",), env={"DIRTYPROOF_BULK": "turbo"}),
    Case("dirtyproof with no verb prints help on stdout and nothing on stderr", (), 2, ("verb",)),
    # -- hangs -------------------------------------------------------------------------------------
    Case("a step that never yields hangs run", ("run", "--design", "{USER}:Hang"), 2,
         ("did not yield within 0.4 s", "ram_save_iterate", "cli_user_designs.py"),
         env={"DIRTYPROOF_STEP_TIMEOUT": "0.4"}, fresh=True),     # fresh: a broken limit is a timeout, not a hang
    Case("a step that never yields hangs hunt",
         ("hunt", "--design", "{USER}:Hang", "--examples", "3", "--schedules", "2", "--trace-dir", "{tmp}/t"), 2,
         ("did not yield within 0.4 s", "ram_save_iterate", "full traceback in "),
         env={"DIRTYPROOF_STEP_TIMEOUT": "0.4"}, fresh=True),     # fresh: a broken limit is a timeout, not a hang
    Case("a step that never yields, inside a process-pool worker of check --jobs",
         ("check", "--design", "{USER}:HangEncoded", "--jobs", "2", "--hunt-budget", "0.5"), 2,
         ("did not yield within 0.5 s", "ram_save_iterate"), env={"DIRTYPROOF_STEP_TIMEOUT": "0.5"},
         within=60, fresh=True),
    Case("a livelocking send took 433 s of hunt to flag (the sweep)",
         ("hunt", "--design", "{USER}:Livelock", "--trace-dir", "{tmp}/t"), 1,
         ("caught by progress", "swarm schedule")),
    Case("a livelocking send: the Hypothesis machine alone",
         ("hunt", "--design", "{USER}:Livelock", "--schedules", "0", "--examples", "3", "--trace-dir", "{tmp}/t"), 1,
         ("caught by progress", "Hypothesis machine")),
    Case("a livelocking send: the explorer",
         ("explore", "--design", "{USER}:Livelock", "--kvm-mode", "manual", "--moves", "1", "--trace-dir", "{tmp}/t"),
         1, ("progress",)),
    Case("a livelocking send: run flags it", ("run", "--design", "{USER}:Livelock", "--steps", "200"), 1,
         ("VIOLATION of progress",)),
    # -- design errors named wrongly ---------------------------------------------------------------
    Case("a crash in a subclass without its own name reported as design 'legacy'",
         ("run", "--design", "{USER}:Crashy"), 2, ("Crashy", "cli_user_designs.py:", "ZeroDivisionError")),
    Case("the same crash met by the Hypothesis machine: named alike, and not shrunk (it took 20 s)",
         ("hunt", "--design", "{USER}:Crashy", "--schedules", "0", "--examples", "3", "--trace-dir", "{tmp}/t"), 2,
         ("Crashy", "cli_user_designs.py:20 in ram_save_iterate", "ZeroDivisionError", "full traceback in "),
         within=3),      # CPU s: shrunk, it took 6
    # -- smaller -------------------------------------------------------------------------------------
    Case("--config is KVM_MODE/GEOMETRY for run as for prove", ("run", "--config", "legacy/aligned", "--steps", "50"),
         0, ("completed",)),
    Case("--config a JSON world for prove is bad input, said so", ("prove", "--config", "{file}"), 2,
         ("config",)),
    Case("the counterexample folder is --trace-dir for prove too (and --traces still works)",
         ("prove", "--design", "legacy", "--config", "legacy/aligned", "--trace-dir", "{tmp}/t"), 0, ("SAFE",),
         within=60),
    Case("the old --traces of prove still names the same folder",
         ("prove", "--design", "legacy", "--config", "legacy/aligned", "--traces", "{tmp}/t"), 0, ("SAFE",),
         within=60),
    Case("replay prints no-loss ok for a run that never completed", ("replay", "{short}"), 0,
         ("not completed", "no-loss                  not checked")),
]
IDS = [re.sub(r"[^A-Za-z0-9]+", "-", c.issue).strip("-")[:70] for c in CASES]


@pytest.fixture
def files(tmp_path, capsys):
    """The placeholders' files: a plain file, a huge config, traces altered as the issue says."""
    plain = tmp_path / "afile"
    plain.write_text("x")
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"geometry": {"blocks": [{"name": "a", "offset": 0, "pages": 1 << 40}]}}))
    good = tmp_path / "good.json"
    assert main(["run", "--steps", "50", "--trace", str(good)]) == 0
    capsys.readouterr()
    data = json.loads(good.read_text())

    def variant(name, **change):
        d = {**data, **change}
        for k in [k for k, v in d.items() if v is ...]:
            del d[k]
        (tmp_path / name).write_text(json.dumps(d))
        return str(tmp_path / name)
    return {"tmp": str(tmp_path), "file": str(plain), "huge": str(huge), "trace": str(good), "USER": USER,
            "unreproduced": variant("unrepro.json", violation={"invariant": "coverage", "step": 3, "page": 1,
                                                               "message": "x"}),
            "noconfig": variant("noconfig.json", config=...),
            "short": variant("short.json", steps=data["steps"][:10])}


def _fill(text: str, files: dict) -> str:
    for k, v in files.items():
        text = text.replace("{" + k + "}", v)
    return text


def ends_as_delivered(case: Case, code: int, out: str, err: str, seconds: float) -> None:
    """Assert the outcome is what issue 10's Deliver section asks for this case."""
    assert "Traceback" not in err, f"{case.issue}: a traceback on stderr:\n{err}"
    assert code == case.status, f"{case.issue}: exit {code}, not {case.status}\n{out[-2000:]}\n{err[-2000:]}"
    assert seconds <= case.within, f"{case.issue}: took {seconds:.1f} s (at most {case.within} s)"
    if code == 2:
        lines = err.splitlines()
        errors = [ln for ln in lines if ln.startswith("dirtyproof: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], f"{case.issue}: not one error line, the last:\n{err}"
        assert all(ln.startswith(PROGRESS) for ln in lines[:-1]), f"{case.issue}: not progress:\n{err}"
        where = errors[0]
    else:
        where = out
    for word in case.says:
        assert word in where, f"{case.issue}: {word!r} not in:\n{where[-3000:]}"


def _cleanup(err: str) -> None:
    """Remove the files a design's crash saved its traceback in (named on the error line)."""
    for path in re.findall(r"full traceback in (\S+)", err):
        Path(path.rstrip(";")).unlink(missing_ok=True)


def rerun(case: Case, files: dict, capsys, monkeypatch) -> tuple[int, str, str, float]:
    """Run ``case`` (in-process, or in a fresh interpreter when it needs one)."""
    argv = [_fill(a, files) for a in case.argv]
    env = {k: _fill(v, files) for k, v in case.env.items()}
    if case.fresh:
        before = _children_cpu()
        r = subprocess.run([sys.executable, "-m", "dirtyproof.cli", *argv], capture_output=True, text=True,
                           timeout=10 * case.within + 120, cwd=files["tmp"],
                           env={**os.environ, "TMPDIR": files["tmp"], **env})     # saved details stay in tmp
        return r.returncode, r.stdout, r.stderr, _children_cpu() - before
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    t = time.process_time()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err, time.process_time() - t


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (and the workers they waited for)."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("DIRTYPROOF_TRACE_DIR", "DIRTYPROOF_BULK", "DIRTYPROOF_STEP_TIMEOUT", "DIRTYPROOF_PROFILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_issue_case_ends_as_delivered(case, files, capsys, monkeypatch):
    code, out, err, seconds = rerun(case, files, capsys, monkeypatch)
    _cleanup(err)
    ends_as_delivered(case, code, out, err, seconds)


def test_a_late_error_after_progress_is_still_the_last_line(files, capsys, monkeypatch):
    """A design's crash found deep in a hunt comes after progress lines: stderr still ends in one
    error line, and the file it names holds the whole traceback, the user's frame in it."""
    case = next(c for c in CASES if c.issue.startswith("a step that never yields hangs hunt"))
    code, out, err, _ = rerun(case, files, capsys, monkeypatch)
    assert code == 2 and len(err.splitlines()) > 1          # progress lines came first
    path = re.search(r"full traceback in (\S+)", err.splitlines()[-1]).group(1)
    text = Path(path).read_text()
    _cleanup(err)
    assert "Traceback" in text and "cli_user_designs.py" in text and "StepTimeout" in text


def test_the_stale_figures_are_gone():
    """The README's suite time (about 4 min) and docs/proofs.md's check time (70-97 s) were stale."""
    assert "about 4 min" not in (REPO / "README.md").read_text()
    assert "70-97 s" not in (REPO / "docs" / "proofs.md").read_text()


@pytest.mark.parametrize("outcome, wrong", [
    ((2, "", "Traceback (most recent call last):\ndirtyproof: error: x\n"), "a traceback"),
    ((1, "", "dirtyproof: error: x\n"), "exit 1"),
    ((2, "", "dirtyproof: error: x\ndirtyproof: error: y\n"), "not one error line"),
    ((2, "", "dirtyproof: error: --budget\nsomething after\n"), "not one error line"),
    ((2, "", "noise\ndirtyproof: error: --budget\n"), "not progress"),
    ((2, "", "dirtyproof: error: another message\n"), "not in"),
])
def test_the_check_rejects_each_wrong_ending(outcome, wrong):
    """:func:`ends_as_delivered` is not a check that cannot fail: each wrong ending is caught."""
    case = Case("hunt --budget 0", ("hunt", "--budget", "0"), 2, ("--budget",))
    code, out, err = outcome
    with pytest.raises(AssertionError, match=wrong):
        ends_as_delivered(case, code, out, err, 0.1)
    with pytest.raises(AssertionError, match="took"):
        ends_as_delivered(case, 2, "", "dirtyproof: error: --budget\n", case.within + 1)
