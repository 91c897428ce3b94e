"""The hunter's quality tier (in CI): every mutant is found within a fixed budget, its shrunk
counterexample is short and replays to the same violation, every safe design passes the same
budget, and every invariant catches at least one mutant."""
from __future__ import annotations

import pytest

from dirtyproof.hunt import hunt
from dirtyproof.hunt.runner import schedule_sweep
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.impl.trace import Trace
from dirtyproof.mutants import MUTANTS, load_manifest
from dirtyproof.spec import INVARIANTS

pytestmark = pytest.mark.quality

# The fixed budget of the tier: examples of one ci-profile (derandomized) run, and the examples
# spent shrinking after the first counterexample (delta debugging then finishes the shrink).
BUDGET = 150
SHRINK_BUDGET = 100

MANIFEST = load_manifest()
ENTRIES = {**MANIFEST["designs"], **MANIFEST["mutants"]}


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    """One folder for the tier's counterexample traces."""
    return str(tmp_path_factory.mktemp("traces"))


_CACHE: dict = {}


def hunted(name: str, trace_dir: str):
    """The hunt of ``name`` as the manifest says it is found (machine, or seeded schedules)."""
    if name not in _CACHE:
        cls = MUTANTS.get(name) or DESIGNS[name]
        entry = ENTRIES[name]
        if entry["found_by"] == "schedules":
            found, _ = schedule_sweep(cls, entry["schedules"], trace_dir)
            _CACHE[name] = found
        else:
            _CACHE[name] = hunt(cls, examples=BUDGET, shrink_budget=SHRINK_BUDGET, profile="ci",
                                trace_dir=trace_dir).found
    return _CACHE[name]


def test_manifest_covers_corpus_and_designs():
    """Every mutant and every shipped design has an entry, and nothing else does."""
    assert set(MANIFEST["mutants"]) == set(MUTANTS)
    assert set(MANIFEST["designs"]) == set(DESIGNS)
    assert len(MUTANTS) >= 12
    for name, e in ENTRIES.items():
        assert e["verdict"] in ("safe", "unsafe"), name
        assert e["found_by"] in ("machine", "schedules", None), name


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e["verdict"] == "unsafe"))
def test_unsafe_is_found_short_and_replays(name, trace_dir):
    """Found within the budget, by the expected invariant, in at most the recorded steps; the saved
    trace replays to the same violation at the same step."""
    entry = ENTRIES[name]
    found = hunted(name, trace_dir)
    assert found is not None, f"{name} not found within the budget"
    assert found.invariant == entry["catcher"], str(found)
    assert found.length <= entry["max_steps"], f"{name}: {found.length} steps > {entry['max_steps']}"
    assert found.trace_path is not None and found.report
    _, res = Trace.load(found.trace_path).replay()
    assert res.violation is not None and res.violation.invariant == found.invariant
    assert res.violation_step == found.step
    if entry["found_by"] == "schedules":
        # the sweep's counterexample went through the delta-debugging shrink to a fixpoint, and the
        # saved trace ends at the violating step
        sh = found.shrink
        assert sh.fixpoint and sh.invariant == entry["catcher"], sh.summary()
        assert sh.length == found.length < sh.original_length
        assert res.violation_step == len(res.choices) - 1 == found.length - 1
        assert found.sweep_index < entry["schedules"]


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e["verdict"] == "safe"))
def test_safe_design_passes_the_same_budget(name, trace_dir):
    """A hunter that cries wolf is as useless as one that sleeps."""
    found = hunted(name, trace_dir)
    assert found is None, str(found)


def test_every_invariant_catches_a_mutant():
    """Non-vacuity: each spec invariant and the lock-order check is some mutant's catcher."""
    catchers = {e["catcher"] for e in MANIFEST["mutants"].values()}
    wanted = {inv.id for inv in INVARIANTS} | {"lock-order"}
    assert not wanted - catchers, f"invariants that catch no mutant: {sorted(wanted - catchers)}"
