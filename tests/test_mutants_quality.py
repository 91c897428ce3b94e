"""The hunter's quality tier (in CI): every unsafe mutant breaks the property the manifest names
within a fixed budget, its shrunk counterexample is short and replays to the same violation, the
rule the manifest names flags it on the way, every safe design passes the same budget (breaking
no rule unless the manifest says which), and every property and every rule rejects at least one
mutant. Both halves of the hunt are held to account: the whole hunt (swarm schedules, then the
Hypothesis machine), and the machine alone on the mutants the manifest says it finds."""
from __future__ import annotations

import pytest

from dirtyproof.hunt import hunt
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.checked import replay
from dirtyproof.impl.trace import Trace
from dirtyproof.mutants import MULTIFD_MUTANTS, MUTANTS, RING_MUTANTS, load_manifest
from dirtyproof.spec import INVARIANTS, PROPERTY, RULE, RUNTIME_CHECKS

pytestmark = pytest.mark.quality

MANIFEST = load_manifest()
# The fixed budget of the tier (the manifest's "tier"): sweep schedules, then examples of one
# ci-profile (derandomized) run, and the examples spent shrinking after the first counterexample
# (delta debugging then finishes the shrink).
SCHEDULES = MANIFEST["tier"]["schedules"]
BUDGET = MANIFEST["tier"]["examples"]
SHRINK_BUDGET = MANIFEST["tier"]["shrink_budget"]
ENTRIES = {**MANIFEST["designs"], **MANIFEST["mutants"]}


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    """One folder for the tier's counterexample traces."""
    return str(tmp_path_factory.mktemp("traces"))


_CACHE: dict = {}


def hunted(name: str, trace_dir: str, schedules: int = SCHEDULES):
    """The tier's hunt of ``name`` (``schedules=0``: the Hypothesis machine alone)."""
    key = (name, schedules)
    if key not in _CACHE:
        cls = MUTANTS.get(name) or DESIGNS[name]
        _CACHE[key] = hunt(cls, examples=BUDGET, shrink_budget=SHRINK_BUDGET, profile="ci",
                           schedules=schedules, trace_dir=trace_dir)
    return _CACHE[key]


def test_manifest_covers_corpus_and_designs():
    """Every mutant and every shipped design has an entry, and nothing else does."""
    assert set(MANIFEST["mutants"]) == set(MUTANTS)
    assert set(MANIFEST["designs"]) == set(DESIGNS)
    assert len(MUTANTS) >= 12
    ids = {inv.id: inv.kind for inv in INVARIANTS} | {k: PROPERTY for k in RUNTIME_CHECKS}
    for name, e in ENTRIES.items():
        assert e["verdict"] in ("safe", "unsafe"), name
        assert e["found_by"] in ("sweep", "machine", None), name
        assert (e["found_by"] is None) == (e["verdict"] == "safe") == (e["property"] is None), name
        assert e["property"] is None or ids[e["property"]] == PROPERTY, name
        assert e["rule"] is None or ids[e["rule"]] == RULE, name
    for name in DESIGNS:
        # the shipped designs satisfy every rule: that is the documentation of the invariants
        assert MANIFEST["designs"][name]["rule"] is None, name


# An entry's full-budget hunt can take minutes on shared cores; entries with slow_tier are
# opt-in (the slow tier) so the default suite stays under 10 minutes (see the manifest's notes).
_SLOW_TIER = [pytest.mark.slow, pytest.mark.skipif(__import__("os").environ.get("DIRTYPROOF_SLOW") != "1",
                                                   reason="slow tier: set DIRTYPROOF_SLOW=1")]


def _assert_short_and_replays(found, entry, max_steps):
    """The expected property breaks in at most ``max_steps``; the saved trace replays to the same
    violation at the same step."""
    assert found.invariant == entry["property"], str(found)
    assert found.length <= max_steps, f"{found.length} steps > {max_steps}"
    assert found.trace_path is not None and found.report
    _, res = replay(Trace.load(found.trace_path))
    assert res.violation is not None and res.violation.invariant == found.invariant
    assert res.violation_step == found.step


@pytest.mark.parametrize("name", [pytest.param(n, marks=_SLOW_TIER if e.get("slow_tier") else ())
                                  for n, e in sorted(ENTRIES.items()) if e["verdict"] == "unsafe"])
def test_unsafe_is_found_short_and_replays(name, trace_dir):
    """The whole hunt finds it within the budget, by the search and the invariant the manifest
    records, in at most the recorded steps; the trace replays to the same violation."""
    entry = ENTRIES[name]
    rep = hunted(name, trace_dir)
    assert rep.found is not None, f"{name} not found within the budget"
    assert rep.found_by == entry["found_by"], f"{name} found by the {rep.found_by}"
    _assert_short_and_replays(rep.found, entry, entry["max_steps"])
    on_the_way = [rv.rule for rv in rep.found.rule_violations]
    assert (on_the_way[0] if on_the_way else None) == entry["rule"], on_the_way
    if entry["property"] == "coverage":
        # the counterexample, driven on to completion, shows the write that is lost
        assert rep.found.lost_write is not None, str(rep.found)
    if rep.found_by == "sweep":
        # the sweep's counterexample went through the delta-debugging shrink (to a fixpoint when
        # its budget allows: a long plain default-world run may not get there), and the
        # saved trace ends at the violating step
        found, sh = rep.found, rep.found.shrink
        assert sh.invariant == entry["property"], sh.summary()
        # shorter, unless the budget ran out first (a long default-world run, clear-mask-range)
        assert sh.length == found.length <= sh.original_length
        # (or already 1-minimal and within the bound: the sweep can hit a schedule with nothing
        # to remove, e.g. read-before-clear's 21 steps at schedule 41 since issue 11)
        assert sh.length < sh.original_length or not sh.fixpoint or sh.original_length <= entry["max_steps"], \
            sh.summary()
        assert found.step == found.length - 1 and found.sweep_index < SCHEDULES


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e.get("machine_max_steps")))
def test_machine_alone_finds_what_the_manifest_says(name, trace_dir):
    """The Hypothesis machine is not dead weight behind the sweep: with no swarm schedules it
    still finds these mutants within the budget, short, replayable."""
    entry = ENTRIES[name]
    rep = hunted(name, trace_dir, schedules=0)
    assert rep.found is not None and rep.found_by == "machine", f"{name} not found by the machine"
    _assert_short_and_replays(rep.found, entry, entry["machine_max_steps"])




@pytest.mark.parametrize("name", [pytest.param(n, marks=_SLOW_TIER if e.get("slow_tier") else ())
                                  for n, e in sorted(ENTRIES.items()) if e["verdict"] == "safe"])
def test_safe_design_passes_the_same_budget(name, trace_dir):
    """A hunter that cries wolf is as useless as one that sleeps."""
    rep = hunted(name, trace_dir)
    assert rep.found is None, str(rep.found)
    assert rep.schedules == SCHEDULES and rep.examples >= BUDGET
    want = ENTRIES[name]["rule"]
    assert list(rep.rules_broken) == ([want] if want else []), [str(r) for r in rep.rules]


def test_every_property_and_rule_rejects_a_mutant():
    """Non-vacuity: each property (with the lock-order check) is some mutant's property, and each
    rule flags some mutant."""
    entries = list(MANIFEST["mutants"].values())
    # a property only a multifd world can break (landing-order) is rejected by a multifd mutant
    mf = MANIFEST["multifd"]
    entries += [mf[world][name] for world in mf["worlds"] for name in MULTIFD_MUTANTS]
    # the dirty ring's rules are flagged by dirty ring mutants (tests/test_dirty_ring.py)
    dr = MANIFEST["dirty_ring"]
    entries += [dr[world][name] for world in dr["worlds"] for name in RING_MUTANTS if name in dr[world]]
    props = {e["property"] for e in entries}
    rules = {e["rule"] for e in entries}
    want_props = {inv.id for inv in INVARIANTS if inv.kind == PROPERTY} | {"lock-order"}
    want_rules = {inv.id for inv in INVARIANTS if inv.kind == RULE}
    assert not want_props - props, f"properties that reject no mutant: {sorted(want_props - props)}"
    assert not want_rules - rules, f"rules that flag no mutant: {sorted(want_rules - rules)}"
