"""Issue 8's gate: every user-style design (tests/user_designs/, plain subclasses that use only the
public operations) gets its verdict through ``dirtyproof check --design path/to/file.py:Class``:
exit 0 for a correct design (every engine says safe, no traceback), exit 1 for a broken one (some
engine shows the violation). Part of the quality tier: about five seconds a design."""
from __future__ import annotations

import inspect
import json

import pytest

from dirtyproof.cli.main import main

from user_designs import ALL

pytestmark = pytest.mark.quality

# Races of a second syncing thread (the periodic timer) with the sender that plain random runs
# reach in 0-4 % of runs: strict xfails here until the sweep's preemption arm (hunt/preempt.py)
# found them. check's default 4 s hunt finds them (issue 8's criterion): the arm's first finds
# are its 5th and 6th runs, sweep schedules 31 and 35, reached 1.3-1.4 s into a budgeted hunt's
# first sweep (up to 50 schedules or 60 % of the budget, 2.4 s) at load 1.6 on 2 cores. Here they
# get twice that budget, so that a loaded machine does not turn the find into a flake; a find
# ends the hunt, so the test costs the same (the other designs get 2 s).
RACE_BUDGET = {"user-slots-lock-dropped-get-or": "8", "user-eager-clear-after-unlock": "8"}
# user-multifd-no-flush-at-sync was a strict xfail here while its first failing sweep schedule was
# swarm schedule 26 (since the swarm draws its worlds); on issue 11's lifecycle model (cleanup
# split, watcher started in SETUP) it is schedule 0 again (109 steps shrunk), so the check finds it.


CASES = [pytest.param(c, id=c.name) for c in ALL]


@pytest.mark.parametrize("cls", CASES)
def test_check_gives_the_design_its_verdict(cls, tmp_path, capsys):
    target = f"{inspect.getfile(cls)}:{cls.__name__}"
    out = tmp_path / "check.json"
    budget = ["--hunt-budget", RACE_BUDGET.get(cls.name, "2")]
    rc = main(["check", "--design", target, *budget, "--jobs", "1",
               "--trace-dir", str(tmp_path / "traces"), "--json", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == (0 if cls.expected == "safe" else 1), err[-2000:]
    data = json.loads(out.read_text())
    assert data, "check wrote no results"
