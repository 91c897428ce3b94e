"""The command line under Hypothesis: verbs, flags, values, file contents and paths drawn at
random. Whatever is drawn, the exit status is a documented one (never 3: that is a bug of
dirtyproof), stderr never holds a traceback, and exit 2 is one error line (after at most the
progress lines of a verb that had started).

The CLI runs in-process (``dirtyproof.cli.main.main``). Draws are bounded so that every example
is short: a hunt gets at most a few examples, ``prove`` one design and one configuration, and
``check`` always one flag that makes it bad input before it starts."""
import json
import os
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dirtyproof.cli.main import main

USER = str(Path(__file__).parent / "cli_user_designs.py")

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
    "check": ["--design", "--jobs", "--trace-dir", "--traces", "--junit", "--json"],
}
NO_VALUE = {"--mutants"}
# Flags that write: only into the example's own folder (relative names land there too), or to
# places that cannot be written or do not keep anything; never the repository or /etc.
WRITES = {"--trace", "--output", "--smt2", "--trace-dir", "--traces", "--junit", "--json"}
WRITE_TARGETS = PATHS + ["/proc/nope/x", "/dev/null", "", "legacy", "ü", "a" * 300, "x:y", " "]
SMALL = {"--steps": ["0", "1", "30", "abc", "-1"], "--examples": ["0", "1", "2", "-1", "x"],
         "--budget": ["0", "-1", "x"], "--schedules": ["0", "1", "-1"], "--cancels": ["0", "1", "-2"],
         "--timeout-ms": ["0", "-5", "100", "x"], "--jobs": ["0", "1", "-1", "x"]}
PROGRESS = ("hunting ", "  [", "check: ", "prove: ", "run: ", "replay: ")


@st.composite
def invocations(draw):
    """(argv with path placeholders, file content) for one invocation."""
    verb = draw(st.sampled_from(sorted(FLAGS) + ["", "nope", "--help", "-x"]))
    argv = [verb] if verb else []
    for flag in draw(st.lists(st.sampled_from(FLAGS.get(verb, ["--design"])), max_size=4)):
        argv.append(flag)
        if flag in NO_VALUE:
            continue
        pool = WRITE_TARGETS if flag in WRITES else (SMALL.get(flag) or (WORDS + PATHS))
        argv.append(draw(st.sampled_from(pool)))
    if verb == "replay" and draw(st.booleans()):
        argv.insert(1, draw(st.sampled_from(PATHS + WORDS)))
    if verb == "hunt":      # keep a valid hunt short: few examples, few schedules
        argv += ["--examples", "2", "--schedules", "1"] if "--examples" not in argv and "--budget" not in argv else []
        argv += ["--schedules", "1"] if "--schedules" not in argv else []
    if verb == "prove":     # one design, one configuration at most
        argv += ["--design", "legacy"] if "--design" not in argv else []
        argv += ["--config", "legacy/aligned"] if "--config" not in argv else []
    if verb == "check":     # always bad input before any work (a full check takes a minute)
        argv += ["--hunt-budget", draw(st.sampled_from(["0", "-1", "nan", "x"]))]
    if verb == "run":
        argv += ["--steps", "30"] if "--steps" not in argv else []
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
    assert code in (0, 1, 2), (real, code, err)
    assert "Traceback" not in err, (real, err)
    if code == 2:
        lines = err.splitlines()
        errors = [ln for ln in lines if ln.startswith("dirtyproof: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], (real, err)
        assert all(ln.startswith(PROGRESS) for ln in lines[:-1]), (real, err)
