"""The command line under Hypothesis: verbs, flags, values, file contents and paths drawn at
random. Whatever is drawn, the exit status is a documented one (never 3: that is a bug of
dirtyproof), stderr never holds a traceback, and exit 2 is one error line, the last (after at
most the progress lines of a verb that had started).

Every verb is drawn: designs, run, replay, spec, hunt, prove, check, explore and conform. The CLI
runs in-process (``dirtyproof.cli.main.main``). Draws are bounded so that every example is short:
a hunt gets at most a few examples, ``prove`` one design and one configuration, ``explore`` one
KVM mode and a few states, ``check`` always one flag that makes it bad input before it starts,
and ``conform`` never starts QEMU (it reads a recorded run, or is given a QEMU that cannot run:
missing, not executable, a folder), so its bad-input paths are covered without one."""
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dirtyproof.cli.main import main

USER = str(Path(__file__).parent / "cli_user_designs.py")
DATA = Path(__file__).parent / "data" / "conform"
RECORDS = [str(DATA / "q72-4mib.trace"), str(DATA / "q72-4mib.samples"), str(DATA / "q10-cancel-race.samples")]

WORDS = ["", "0", "-1", "1", "2", "abc", "nan", "inf", "1e999", "-0", " ", "ü", ":", "x:y", "a" * 300,
         "/proc/nope/x", "/dev/null", "legacy", "periodic", "nope", "manual/mixed",
         "legacy/aligned", "bogus/x", "dirtyproof.impl.designs:Legacy", "os:path", "os:getcwd",
         f"{USER}:Reorder", f"{USER}:Crashy", f"{USER}:AttachCrash", f"{USER}:NonString", f"{USER}:Nope",
         "missing.py:X", "read-before-clear", "ci", "dev"]
# values that are a path into the example's own folder: {file} a drawn file, {dir} a folder
PATHS = ["{file}", "{dir}", "{dir}/new/out.json", "{file}/under-a-file", "{dir}/"]

FILE_CONTENTS = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.recursive(st.none() | st.booleans() | st.integers(-3, 1 << 41) | st.text(max_size=5),
                 lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                     st.sampled_from(["dirtyproof_trace", "design", "steps", "config", "violation", "geometry",
                                      "blocks", "kvm_mode", "vcpus", "x"]), kids, max_size=4),
                 max_leaves=10).map(json.dumps),
    st.sampled_from(["trace", "config"]),       # a valid trace or config, then mutated below
)

FLAGS = {
    "designs": ["--mutants"],
    "run": ["--design", "--seed", "--steps", "--cancels", "--trace", "--config", "--kvm-mode", "--geometry"],
    "replay": ["--tail"],
    "spec": ["--output"],
    "hunt": ["--design", "--mutants", "--budget", "--examples", "--profile", "--seed", "--schedules",
             "--trace-dir", "--tail"],
    "prove": ["--design", "--config", "--smt2", "--trace-dir", "--traces", "--timeout-ms", "--tail"],
    "check": ["--design", "--jobs", "--trace-dir", "--traces", "--junit", "--json", "--hunt-schedules",
              "--hunt-examples", "--hunt-budget"],
    "explore": ["--design", "--kvm-mode", "--config", "--guest-writes", "--device-writes", "--clock-moves",
                "--cancels", "--moves", "--max-depth", "--max-states", "--no-por", "--all-deadlines", "--order", "--jobs", "--trace-dir",
                "--quiet"],
    "conform": ["--qemu-trace", "--samples", "--qemu-version", "--qemu", "--qemu-root", "--hot-mib", "--delay",
                "--bandwidth", "--downtime", "--no-auto-converge", "--throttle-initial", "--linger",
                "--time-limit", "--no-guest-check", "--save-qemu-trace", "--save-samples", "--quiet"],
}
NO_VALUE = {"--mutants", "--no-por", "--all-deadlines", "--quiet", "--no-auto-converge", "--no-guest-check"}
# Flags that write: only into the example's own folder (relative names land there too), or to
# places that cannot be written or do not keep anything; never the repository or /etc.
WRITES = {"--trace", "--output", "--smt2", "--trace-dir", "--traces", "--junit", "--json", "--save-qemu-trace",
          "--save-samples"}
# conform's inputs: recorded runs (valid or not) and QEMUs that cannot run
READS = {"--samples": RECORDS + PATHS + ["/dev/null", "nope", ""],
         "--qemu": ["/nope/qemu", "{file}", "{dir}", "/dev/null", "no-such-qemu-x", ""],
         "--qemu-root": ["{dir}", "{file}", "/nope", ""],
         "--qemu-version": ["7.2.0", "10.0.2", "x", "1..2", ""]}
NEVER_RUNS = ["/nope/qemu", "{file}", "{dir}", "/dev/null"]
WRITE_TARGETS = PATHS + ["/proc/nope/x", "/dev/null", "", "legacy", "ü", "a" * 300, "x:y", " "]
SMALL = {"--hunt-schedules": ["0", "1", "-1", "x", "1.5"], "--hunt-examples": ["0", "2", "-1", "x", ""],
         "--hunt-budget": ["0", "-1", "nan", "x", "2"],
         "--steps": ["0", "1", "30", "abc", "-1"], "--examples": ["0", "1", "2", "-1", "x"],
         "--budget": ["0", "-1", "x"], "--schedules": ["0", "1", "-1"], "--cancels": ["0", "1", "-2"],
         "--timeout-ms": ["0", "-5", "100", "x"], "--jobs": ["0", "1", "-1", "x"],
         "--max-states": ["0", "1", "20", "x", "-3"], "--max-depth": ["0", "1", "6", "x"],
         "--moves": ["0", "1", "-1", "x"], "--guest-writes": ["0", "1", "x"], "--device-writes": ["0", "1", "-1"],
         "--clock-moves": ["0", "1", "x"], "--kvm-mode": ["manual", "legacy", "initially_set", "bogus", ""],
         "--order": ["moves", "bfs", "x", ""], "--hot-mib": ["0", "1", "4", "99", "x", "-1", "0x2"],
         "--delay": ["0", "-1", "x"], "--bandwidth": ["0", "1", "x"], "--downtime": ["0", "5", "-1"],
         "--throttle-initial": ["0", "200", "x"], "--linger": ["0", "-1", "0.5", "nan", "x"],
         "--time-limit": ["0", "-1", "1", "nan", "inf", "x"]}
PROGRESS = ("hunting ", "  [", "check: ", "prove: ", "run: ", "replay: ", "explore: ", "  ... ")


@st.composite
def invocations(draw):
    """(argv with path placeholders, file content) for one invocation."""
    verb = draw(st.sampled_from(sorted(FLAGS) + ["", "nope", "--help", "-x"]))
    argv = [verb] if verb else []
    for flag in draw(st.lists(st.sampled_from(FLAGS.get(verb, ["--design"])), max_size=4)):
        argv.append(flag)
        if flag in NO_VALUE:
            continue
        if verb == "conform" and flag == "--qemu-trace":
            pool = RECORDS + PATHS + ["/dev/null", "nope"]
        else:
            pool = WRITE_TARGETS if flag in WRITES else (SMALL.get(flag) or READS.get(flag) or (WORDS + PATHS))
        argv.append(draw(st.sampled_from(pool)))
    if verb == "replay" and draw(st.booleans()):
        argv.insert(1, draw(st.sampled_from(PATHS + WORDS)))
    if verb == "hunt":      # keep a valid hunt short: few examples, few schedules
        argv += ["--examples", "2", "--schedules", "1"] if "--examples" not in argv and "--budget" not in argv else []
        argv += ["--schedules", "1"] if "--schedules" not in argv else []
    if verb == "prove":     # one design, one configuration at most
        argv += ["--design", "legacy"] if "--design" not in argv else []
        argv += ["--config", "legacy/aligned"] if "--config" not in argv else []
    if verb == "check":     # always bad input before any work (a full check takes a minute): a bad
        # --hunt-budget (the last one counts), or a good one beside a work flag (two budgets)
        bad = draw(st.sampled_from(["0", "-1", "nan", "x", "2"]))
        argv += ["--hunt-budget", bad] + (["--hunt-schedules", "5"] if bad == "2" else [])
    if verb == "run":
        argv += ["--steps", "30"] if "--steps" not in argv else []
    if verb == "explore":   # one mode, a few states
        argv += ["--kvm-mode", "manual"] if "--kvm-mode" not in argv else []
        argv += ["--max-states", "40"] if "--max-states" not in argv else []
    if verb == "conform" and "--qemu-trace" not in argv and "--samples" not in argv:
        # never a real migration: the last --qemu wins, and it cannot run
        argv += ["--qemu", draw(st.sampled_from(NEVER_RUNS))]
        if "--qemu-root" in argv:
            argv.remove(argv[argv.index("--qemu-root") + 1])
            argv.remove("--qemu-root")
    return argv, draw(FILE_CONTENTS), draw(st.booleans())


def _materialise(folder: Path, content: str) -> Path:
    """The drawn file in ``folder``: raw content, or a valid trace/config file."""
    f = folder / "input.json"
    if content == "trace":
        main(["run", "--steps", "20", "--trace", str(f)])
    elif content == "config":
        f.write_text(json.dumps({"kvm_mode": "legacy", "vcpus": 1}))
    else:
        f.write_text(content)
    return f


@settings(max_examples=50, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(invocations())
def test_cli_exit_status_and_stderr(capsys, inv):
    argv, content, env_trace_dir = inv
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        os.chdir(folder)
        saved = {k: os.environ.get(k) for k in ("DIRTYPROOF_TRACE_DIR", "DIRTYPROOF_STEP_TIMEOUT")}
        try:
            os.environ["DIRTYPROOF_STEP_TIMEOUT"] = "2"
            f = _materialise(folder, content)
            if env_trace_dir:
                os.environ["DIRTYPROOF_TRACE_DIR"] = str(f)     # a file: bad for hunt, prove, check
            else:
                os.environ.pop("DIRTYPROOF_TRACE_DIR", None)
            real = [a.replace("{file}", str(f)).replace("{dir}", str(folder)) for a in argv]
            capsys.readouterr()
            with warnings.catch_warnings():     # a hunt nested in this Hypothesis test may warn
                warnings.simplefilter("ignore")
                code = main(real)
            out, err = capsys.readouterr()
        finally:
            os.chdir(old)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    for saved_detail in re.findall(r"full traceback in (\S+)", err):
        Path(saved_detail.rstrip(";")).unlink(missing_ok=True)     # a design's crash, kept for its author
    assert code in (0, 1, 2), (real, code, err)
    assert "Traceback" not in err, (real, err)
    if code == 2:
        lines = err.splitlines()
        errors = [ln for ln in lines if ln.startswith("dirtyproof: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], (real, err)
        assert all(ln.startswith(PROGRESS) for ln in lines[:-1]), (real, err)
