"""Path-guided concretization: the abstract counterexample becomes a short schedule of the
reference model that replays to the same violation on the same page, and a wrong path fails loudly."""
import subprocess
import sys

import pytest

from dirtyproof.impl.designs import DESIGNS
from dirtyproof.checked import replay
from dirtyproof.impl.trace import Trace
from dirtyproof.proofs.bmc import search
from dirtyproof.proofs.concretize import ConcretizationError, concretize
from dirtyproof.proofs.registry import encoding_for

BG = DESIGNS["background-v1"]
MODES = ["legacy", "manual", "initially_set"]
# The abstract counterexample has 76 micro-steps (75 before issue 11 started the watcher in SETUP, a step of its own); a concrete step often covers several of them,
# and stutters (other pages, the clock) add some: the schedule must stay about that long.
MAX_CHOICES = 100


@pytest.fixture(scope="module")
def paths():
    """The shortest abstract counterexample of background-v1 on mixed blocks, per KVM mode
    (unaligned q: the aligned configurations are proved safe)."""
    enc = encoding_for(BG)
    out = {}
    for mode in MODES:
        b = search(enc, mode, "mixed", 200, (False,))
        assert b.status == "found" and b.depth == 76
        out[mode] = b
    return enc, out


@pytest.mark.parametrize("mode", MODES)
def test_guided_schedule_replays_to_the_same_violation(paths, mode, tmp_path):
    enc, bs = paths
    b = bs[mode]
    c = concretize("background-v1", BG, mode, b.states, tmp_path / "t.json", path=b.path, enc=enc,
                   fallback=False)
    assert c.method == "guided"
    assert c.invariant == "coverage"
    assert c.length <= MAX_CHOICES, c.length
    # q is in the unaligned block, as the abstract path says (fast = False)
    _, again = replay(Trace.load(c.path))
    assert again.violation.invariant == "coverage" and again.violation.page == c.page
    assert again.violation_step == c.length - 1
    w, _ = replay(Trace.load(c.path))
    assert not w.block_of(c.page).fast_path
    r = subprocess.run([sys.executable, "-m", "dirtyproof.cli", "replay", str(c.path)], capture_output=True,
                       text=True, timeout=120)
    # exit 1: the replayed run violates an invariant (the recorded one, at the recorded step)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"recorded violation coverage at step {c.length - 1}: reproduced" in r.stdout


def _corrupt(b, how):
    path, states = list(b.path), [dict(s) for s in b.states]
    if how == "rule-removed":
        k = next(i for i, (r, _) in enumerate(path) if r.id == "vcpu.write_q")
        del path[k]
        del states[k + 1]
    elif how == "state-altered":
        states[40]["shadow"] = not states[40]["shadow"]
    elif how == "truncated":
        path, states = path[:-1], states[:-1]
    elif how == "not-initial":
        states[0]["bmap"] = True
    return path, states


@pytest.mark.parametrize("how", ["rule-removed", "state-altered", "truncated", "not-initial"])
def test_corrupted_path_fails_loudly(paths, how):
    enc, bs = paths
    path, states = _corrupt(bs["legacy"], how)
    # even with the random fallback allowed: a path that is not a path of the encoding is a bug
    with pytest.raises(ConcretizationError, match="ENCODING BUG"):
        concretize("background-v1", BG, "legacy", states, None, path=path, enc=enc, fallback=True)


def test_model_that_disagrees_with_the_path_fails_loudly(paths):
    """The path of background-v1 cannot be followed by a reference model without the watcher:
    the guided search must say so, not pass."""
    enc, bs = paths
    b = bs["legacy"]
    with pytest.raises(ConcretizationError, match="ENCODING BUG: no schedule .* follows the abstract path"):
        concretize("legacy", DESIGNS["legacy"], "legacy", b.states, None, path=b.path, enc=enc,
                   fallback=False, seconds=3)
