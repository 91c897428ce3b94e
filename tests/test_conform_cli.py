"""``dirtyproof conform`` on recorded runs: exit codes, one-line errors; the model is the model's."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from dirtyproof.cli.main import main
from dirtyproof.conform import model
from dirtyproof.conform.runner import RunError, RunParams, run_migration
from dirtyproof.impl.designs import Legacy

DATA = Path(__file__).parent / "data" / "conform"


def rec_args(name):
    return ["conform", "--qemu-trace", str(DATA / f"{name}.trace"), "--samples", str(DATA / f"{name}.samples")]


def test_conforming_recording_exits_0(capsys):
    assert main(rec_args("q72-60mib-12s")) == 0
    out = capsys.readouterr().out
    assert "HOLDS  throttle-model" in out and "0 broken" in out


def test_broken_rule_exits_1_and_prints_the_evidence(capsys, tmp_path):
    trace = tmp_path / "t.trace"
    trace.write_text((DATA / "q10-60mib-12s.trace").read_text().replace("throttled by 30%", "throttled by 35%"))
    assert main(["conform", "--qemu-trace", str(trace), "--samples", str(DATA / "q10-60mib-12s.samples")]) == 1
    out = capsys.readouterr().out
    assert "BROKEN throttle-model" in out and "cpu_throttle_set set guest CPU throttled by 35%" in out
    assert "predicts throttle to 30%" in out


@pytest.mark.parametrize("content", ["", "garbage\n", "12@x:y\n"])
def test_malformed_trace_exits_2_with_one_line(capsys, tmp_path, content):
    bad = tmp_path / "bad.trace"
    bad.write_text(content)
    assert main(["conform", "--qemu-trace", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("args", [["--qemu-trace", "/nonexistent/t"], ["--samples", "x"],
                                  ["--hot-mib", "100"], ["--qemu", "/nonexistent/qemu"],
                                  ["--time-limit", "-1"]])
def test_bad_input_exits_2(capsys, args):
    with pytest.raises(SystemExit) as exc:
        code = main(["conform", *args])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_samples_exit_2(capsys, tmp_path):
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"kind": "sample", "t_send": "noon"}\n')
    assert main(["conform", "--qemu-trace", str(DATA / "q10-4mib.trace"), "--samples", str(bad)]) == 2
    assert "needs t_send" in capsys.readouterr().err


def test_predictions_come_from_the_models_code(monkeypatch):
    """Changing the model's mig_throttle_guest_down changes conform's prediction: no second copy."""
    cfg = model.ThrottleSettings().config()
    args = dict(throttle_pct=20, dirty_rate_high_cnt=1, num_dirty_pages_period=30000, bytes_xfer_period=10**8)
    assert model.predict_period_end(Legacy, cfg, **args).throttle_pct == 30

    def doubled(self, w, dirty, threshold):
        w.throttle_pct = min(99, w.throttle_pct * 2)
    monkeypatch.setattr(Legacy, "mig_throttle_guest_down", doubled)
    assert model.predict_period_end(Legacy, cfg, **args).throttle_pct == 40
    assert model.throttle_ladder(Legacy, cfg, 1) == [0]


# -- nothing left behind, without QEMU: a fake binary that never answers QMP ----------------------

FAKE = """#!/bin/sh
echo $$ >> "$FAKE_QEMU_PIDS"
exec sleep 300
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_runner_cleans_up_when_qemu_never_answers(tmp_path, monkeypatch):
    fake = tmp_path / "fake-qemu"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    pids = tmp_path / "pids"
    monkeypatch.setenv("FAKE_QEMU_PIDS", str(pids))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    t = time.monotonic()
    with pytest.raises(RunError, match="did not start"):
        run_migration(RunParams(qemu=str(fake), qmp_wait=0.5))
    assert time.monotonic() - t < 15
    started = [int(x) for x in pids.read_text().split()]
    assert len(started) == 2                       # destination and source were both started
    assert not any(_alive(p) for p in started)     # and both stopped
    assert list(scratch.iterdir()) == []           # the run's folder is gone


def test_bare_query_migrate_lines_and_a_version_flag(tmp_path, capsys):
    """Runs recorded elsewhere: one query-migrate reply per line with a "t" field, no header."""
    import json
    bare = []
    for line in (DATA / "q10-60mib-12s.samples").read_text().splitlines():
        obj = json.loads(line)
        if obj["kind"] == "sample":
            bare.append(json.dumps({"t": obj["t_send"], **obj["query"]}))
    path = tmp_path / "bare.jsonl"
    path.write_text("\n".join(bare) + "\n")
    args = ["conform", "--qemu-trace", str(DATA / "q10-60mib-12s.trace"), "--samples", str(path)]
    assert main(args + ["--qemu-version", "10.0.2"]) == 0
    out = capsys.readouterr().out
    assert "periodic design" in out and "HOLDS  throttle-model" in out
    assert main(args) == 0                          # no version: the legacy design's rules
    assert "legacy design" in capsys.readouterr().out
