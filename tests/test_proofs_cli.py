"""``dirtyproof prove`` and ``check`` on the command line: output, --smt2, bad input."""
import subprocess
import sys


def dp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dirtyproof.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_prove_prints_obligations_and_writes_smt2(tmp_path):
    r = dp("prove", "--design", "legacy", "--config", "manual/mixed", "--smt2", str(tmp_path / "q"))
    assert r.returncode == 0, r.stderr
    for word in ("initiation", "consecution", "completion", "proved"):
        assert word in r.stdout
    files = list((tmp_path / "q").glob("*.smt2"))
    assert len(files) > 50
    assert "(check-sat)" in files[0].read_text()


def test_prove_bad_input_is_one_line_exit_2():
    for args in (["prove", "--config", "nope"], ["prove", "--design", "nope"], ["prove", "--timeout-ms", "0"],
                 ["check", "--design", "nope"], ["check", "--jobs", "0"]):
        r = dp(*args)
        assert r.returncode == 2, args
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
