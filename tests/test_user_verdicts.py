"""Issue 8's gate: every user-style design (tests/user_designs/, plain subclasses that use only the
public operations) gets its verdict through ``dirtyproof check --design path/to/file.py:Class``:
exit 0 for a correct design (every engine says safe, no traceback), exit 1 for a broken one (some
engine shows the violation). Part of the quality tier: about five seconds a design."""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from dirtyproof.cli.main import main

from user_designs import ALL

pytestmark = pytest.mark.quality

# Races of a second syncing thread (the periodic timer) with the sender that plain random runs
# reach in 0-4 % of runs: strict xfails here until the sweep's preemption arm (hunt/preempt.py)
# found them. check's default hunt, a fixed amount of work (cli/judges.py CHECK_SCHEDULES and
# CHECK_EXAMPLES), finds them whatever the load (issue 8's criterion): the arm's first finds are
# its 5th and 6th runs, sweep schedules 31 and 35 (since a release then an acquire are two
# steps: 31 for user-eager-clear-after-unlock, 91 for user-slots-lock-dropped-get-or, see
# MISSED). Every broken design gets the default work (a find ends the hunt); a correct one, which runs its whole budget, a smaller one to keep the tier
# fast (about 2 s), and one of them the wall-clock --hunt-budget, so that both budgets are run.
SAFE_WORK = ["--hunt-schedules", "30", "--hunt-examples", "50"]
WALL_CLOCK = {"user-sync-twice-at-completion": ["--hunt-budget", "2"]}
# user-multifd-no-flush-at-sync was a strict xfail here while its first failing sweep schedule was
# swarm schedule 26 (since the swarm draws its worlds); on issue 11's lifecycle model (cleanup
# split, watcher started in SETUP) it is schedule 0 again (109 steps shrunk), so the check finds it.


# user-slots-lock-dropped-get-or is a strict xfail again: since a release then an acquire are two
# steps (impl/world.py, World.acquire), the seed-0 sweep's first find is schedule 91 (it was 35:
# none of the first 90 breaks it, measured with tests/test_hunt_resmall.py's sweep_arm), beyond
# check's 50; plain seeded runs break it in 4 of 60 (initially_set, aligned), and the explorer's
# default bound does not reach it (exhaustive, safe). Measured before any retuning, left as found.
MISSED = {"user-slots-lock-dropped-get-or": "the sweep's first find is schedule 91, beyond check's 50"}

# user-eager-clear-after-unlock is judged by test_check_is_deterministic (twice, compared)
REPEATED = "user-eager-clear-after-unlock"
CASES = [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=MISSED[c.name])]
                      if c.name in MISSED else []) for c in ALL if c.name != REPEATED]


@pytest.mark.parametrize("cls", CASES)
def test_check_gives_the_design_its_verdict(cls, tmp_path, capsys):
    target = f"{inspect.getfile(cls)}:{cls.__name__}"
    out = tmp_path / "check.json"
    budget = [] if cls.expected != "safe" else WALL_CLOCK.get(cls.name, SAFE_WORK)
    rc = main(["check", "--design", target, *budget, "--jobs", "1",
               "--trace-dir", str(tmp_path / "traces"), "--json", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == (0 if cls.expected == "safe" else 1), err[-2000:]
    said = {(): "a hunt of 50 schedules + 50 examples each", tuple(SAFE_WORK): "a hunt of 30 schedules + 50 examples each",
            ("--hunt-budget", "2"): "a 2 s hunt (wall clock: load-dependent) each"}[tuple(budget)]
    assert said in err, err[:500]
    data = json.loads(out.read_text())
    assert data, "check wrote no results"


def _hunt_row(path: Path) -> dict:
    """The hunt row of a check's JSON results."""
    rows = [r for r in json.loads(path.read_text())["results"] if r["engine"] == "hunt"]
    assert len(rows) == 1, rows
    return rows[0]


def test_check_is_deterministic(tmp_path, capsys):
    """Two runs of ``check --design X`` with the default (work) hunt give the same hunt verdict,
    property and counterexample: the same detail but for its seconds, and the same trace file
    (its name carries the length and a digest of the steps). X is a timer race (the preemption
    arm's find at sweep schedule 35), which a wall-clock hunt could miss on a loaded machine."""
    cls = next(c for c in ALL if c.name == REPEATED)
    target = f"{inspect.getfile(cls)}:{cls.__name__}"
    seen = []
    for k in range(2):
        out = tmp_path / f"check{k}.json"
        rc = main(["check", "--design", target, "--jobs", "1", "--trace-dir", str(tmp_path / f"traces{k}"),
                   "--json", str(out)])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert rc == 1, err[-2000:]
        assert "a hunt of 50 schedules + 50 examples" in err
        row = _hunt_row(out)
        assert row["got"] == "unsafe" and row["trace"], row
        detail = row["detail"].replace(str(tmp_path / f"traces{k}"), "TRACES")
        seen.append((row["got"], re.sub(r"\d+(\.\d+)? s\b", "_ s", detail), Path(row["trace"]).name))
    assert "coverage violated" in seen[0][1]
    assert seen[0] == seen[1]
