"""``dirtyproof explore --jobs``: the runs on several processes, the serial order's output.

Default suite: a few seconds (small bounds: one vCPU write, paths cut at depth 80).
"""
from __future__ import annotations

import json
import re
from dataclasses import replace

from dirtyproof.cli.main import main
from dirtyproof.explore import Bounds, default_config
from dirtyproof.explore.bounds import fast_geometry
from dirtyproof.explore.parallel import RunJob, ordered_outcomes
from dirtyproof.explore.reductions import Reductions

ONE_WRITE = ["--guest-writes", "1", "--device-writes", "0", "--clock-moves", "0", "--cancels", "0",
             "--moves", "1", "--max-depth", "80"]
# legacy mode exhausts, manual finds the non-convergence lasso, initially_set cannot matter
MODES = ["--kvm-mode", "legacy", "--kvm-mode", "manual", "--kvm-mode", "initially_set"]


def _normal(text: str, folder) -> str:
    """The report without what depends on timing or on the trace folder."""
    text = re.sub(r"\d+\.\d+ s \(\d+ distinct/s\)", "T s", text)
    return text.replace(str(folder), "TRACES")


def test_jobs_1_and_2_give_the_same_verdict_and_report(capsys, tmp_path):
    # the fast-path block alone (the portfolio's two-move world): a second a run
    world = tmp_path / "world.json"
    world.write_text(json.dumps(replace(default_config("manual"), geometry=fast_geometry()).to_json()))
    out = {}
    for jobs in ("1", "2"):
        folder = tmp_path / jobs
        rc = main(["explore", "--design", "clear-previous-chunk", "--config", str(world), *MODES, *ONE_WRITE,
                   "--jobs", jobs, "--trace-dir", str(folder)])
        text = capsys.readouterr().out
        out[jobs] = (rc, _normal(text, folder), sorted(p.name for p in folder.iterdir()))
    assert out["1"] == out["2"]
    rc, text, traces = out["2"]
    assert rc == 1 and "[legacy]" in text and "[manual]" in text and "[initially_set]" not in text
    assert "no violation: exhaustive within bounds B" in text and "VIOLATION of progress" in text
    assert len(traces) == 1                # the one printed: a run after it writes nothing


def test_an_earlier_violation_wins_over_a_faster_later_one(tmp_path):
    """The later run finds its violation at once, the earlier one after a second or two: the
    earlier one is what comes out, alone, as in the serial order."""
    one_write = Bounds(guest_writes=1, device_writes=0, clock_moves=0, cancels=0, moves=1, max_depth=80)
    zero = Bounds(guest_writes=0, device_writes=0, clock_moves=0, cancels=0, moves=0)
    jobs = [RunJob("clear-previous-chunk", "slow", default_config("manual"), one_write, Reductions(), "moves",
                   str(tmp_path), False),
            RunJob("dirty-count-raw-bits", "fast", default_config("manual"), zero, Reductions(), "moves",
                   str(tmp_path), False)]
    got = list(ordered_outcomes(jobs, 2))
    assert len(got) == 1 and got[0]["violated"] and got[0]["text"].startswith("[slow]")
    assert "VIOLATION of progress" in got[0]["text"]
    assert not list(tmp_path.iterdir())    # workers name traces; the caller writes the one it keeps


def test_bad_jobs_is_bad_input(capsys):
    assert main(["explore", "--design", "legacy", "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_ctrl_c_stops_the_workers_within_a_second(tmp_path, monkeypatch):
    """As tests/test_cli_ctrlc.py does for every verb, on the default bound's nine runs over two
    processes (minutes of work: the suite's threads-only bound would end before the signal): exit
    130 within a second, "interrupted", no process of the group left."""
    from test_cli_ctrlc import _check
    monkeypatch.setenv("DIRTYPROOF_EXPLORE_BOUND", "default")
    argv = ["explore", "--design", "periodic", "--jobs", "2"]
    try:
        _check("explore --jobs 2", argv, 1.5, tmp_path)
    except AssertionError:          # once more, as tests/test_cli_ctrlc.py allows on a loaded machine
        _check("explore --jobs 2", argv, 1.8, tmp_path)


def test_a_design_crash_in_a_worker_is_the_serial_one_line(capsys, tmp_path):
    """A crash met by a run in a worker (a user's design) is reported by the parent in the serial
    command's one line and status, while the other worker is stopped."""
    from pathlib import Path
    user = str(Path(__file__).parent / "cli_user_designs.py")
    got = {}
    for jobs in ("1", "2"):
        rc = main(["explore", "--design", f"{user}:Crashy", "--jobs", jobs, "--trace-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        got[jobs] = (rc, re.sub(r"/tmp/dirtyproof-design-\S+", "FILE", err))
    assert got["1"] == got["2"] and got["2"][0] == 2 and "ZeroDivisionError: boom" in got["2"][1]
