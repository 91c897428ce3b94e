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

# Races with the periodic timer that plain random runs reach in 1-3 of 90 runs: a 2 s hunt misses
# them (issue 9's explorer is meant to find them). Strict: a find turns these into failures to fix.
MISSED = {"user-slots-lock-dropped-get-or": "a race of the timer's log sync with the sender's CLEAR",
          "user-eager-clear-after-unlock": "a race of an eager CLEAR with the timer's sync"}
# user-multifd-no-flush-at-sync was a strict xfail here while its first failing sweep schedule was
# swarm schedule 26 (since the swarm draws its worlds); on issue 11's lifecycle model (cleanup
# split, watcher started in SETUP) it is schedule 0 again (109 steps shrunk), so the check finds it.


CASES = [pytest.param(c, id=c.name, marks=pytest.mark.xfail(strict=True, reason=f"missed by the hunt: {MISSED[c.name]}"))
         if c.name in MISSED else pytest.param(c, id=c.name) for c in ALL]


@pytest.mark.parametrize("cls", CASES)
def test_check_gives_the_design_its_verdict(cls, tmp_path, capsys):
    target = f"{inspect.getfile(cls)}:{cls.__name__}"
    out = tmp_path / "check.json"
    rc = main(["check", "--design", target, "--hunt-budget", "2", "--jobs", "1",
               "--trace-dir", str(tmp_path / "traces"), "--json", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == (0 if cls.expected == "safe" else 1), err[-2000:]
    data = json.loads(out.read_text())
    assert data, "check wrote no results"
