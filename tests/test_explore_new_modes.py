"""The explorer's verdicts in the new modes (issue 11): every shipped design explored in a hinting
world and in a multifd world, compared with the manifest's ``explore`` expectations.

The runs live in the manifest (``mutants/manifest.json``, sections ``hinting`` and ``multifd``,
key ``explore``): each names a world of its section (the Config overrides the hunt gets), a KVM
mode and the bounds, and each design's entry of that world holds the expected verdict per run
(as the mutants' ``explore`` entries: ``verdict``, and for an unsafe one ``property``, ``steps``
and ``run``). The explored world is the explorer's small world (explore/bounds.py) with the
section's overrides. The explorations take tens of seconds to minutes each, so the comparison
is ``slow`` and opt-in (``DIRTYPROOF_SLOW=1 -m slow``); the default suite only checks, in well
under a second, that every expectation is well formed and names a run that exists.
"""
from __future__ import annotations

import dataclasses
import os

import pytest

from dirtyproof.checked import resolve
from dirtyproof.explore.bounds import Bounds, default_config
from dirtyproof.explore.verdict import CUT, SAFE, UNSAFE, judge, matches
from dirtyproof.impl.config import ALL_KVM_MODES
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.mutants import load_manifest
from dirtyproof.spec import INVARIANTS, PROPERTY, RUNTIME_CHECKS

MANIFEST = load_manifest()
SECTIONS = ("hinting", "multifd")


def runs_of(section: str) -> dict:
    """The explorer runs a section declares: label -> ``{"world", "kvm_mode", "bounds", "why"}``."""
    return {k: v for k, v in MANIFEST[section]["explore"]["runs"].items()}


def run_config(section: str, label: str):
    """The explored Config of run ``label``: the explorer's small world in the run's KVM mode,
    with the overrides of the run's world of the section."""
    run = runs_of(section)[label]
    return dataclasses.replace(default_config(run["kvm_mode"]), **MANIFEST[section]["worlds"][run["world"]])


def run_bounds(section: str, label: str) -> Bounds:
    """The bounds of run ``label`` (fields of :class:`Bounds`)."""
    return Bounds(**runs_of(section)[label]["bounds"])


# (section, run label, design): one exploration each, in the manifest's order.
CASES = [(s, label, name) for s in SECTIONS for label, run in runs_of(s).items()
         for name, e in MANIFEST[s][run["world"]].items() if label in e.get("explore", {})]


def test_explore_expectations_are_well_formed():
    """Each run names a world of its section, a KVM mode and valid bounds; every shipped design has
    an expectation for every run of its world; each expectation is a verdict the explorer gives,
    an unsafe one with a property, its steps and the run that finds it; and some expectation is
    unsafe (the comparison can fail: a design the explorer must catch in these worlds)."""
    ids = {inv.id: inv.kind for inv in INVARIANTS} | {k: PROPERTY for k in RUNTIME_CHECKS} | {"lock-order": PROPERTY}
    for s in SECTIONS:
        runs = runs_of(s)
        assert runs, s
        for label, run in runs.items():
            assert run["world"] in MANIFEST[s]["worlds"], (s, label)
            assert run["kvm_mode"] in ALL_KVM_MODES, (s, label)
            run_bounds(s, label)                       # raises on a bad bound
            assert run_config(s, label).kvm_mode == run["kvm_mode"], (s, label)
            for name in run.get("designs", DESIGNS):
                assert label in MANIFEST[s][run["world"]][name].get("explore", {}), (s, label, name)
        for world in MANIFEST[s]["worlds"]:
            for name, e in MANIFEST[s][world].items():
                for label, want in e.get("explore", {}).items():
                    assert label in runs and runs[label]["world"] == world, (s, world, name, label)
                    assert want["verdict"] in (SAFE, UNSAFE, CUT), (s, name, label)
                    if want["verdict"] == UNSAFE:
                        assert ids[want["property"]] == PROPERTY and want["steps"] > 0, (s, name, label)
                        assert want["run"] == label, (s, name, label)
    assert CASES
    assert any(MANIFEST[s][runs_of(s)[label]["world"]][name]["explore"][label]["verdict"] == UNSAFE
               for s, label, name in CASES)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DIRTYPROOF_SLOW"), reason="opt-in: DIRTYPROOF_SLOW=1")
@pytest.mark.parametrize("section,label,name", CASES)
def test_explorer_gives_the_manifest_verdict_in_the_new_modes(section, label, name, tmp_path):
    """Design ``name`` explored in run ``label`` of ``section`` gets the recorded verdict: safe is
    exhaustive with no violation, unsafe the recorded property in exactly the recorded number of
    steps (the cheapest counterexample in the explorer's order), cut a search stopped by its caps."""
    run = runs_of(section)[label]
    want = MANIFEST[section][run["world"]][name]["explore"][label]
    j = judge(resolve(name), name, trace_dir=str(tmp_path),
              runs=[(label, run_config(section, label), run_bounds(section, label))])
    ok, why = matches(j, want)
    assert ok, f"{section} {label} {name}: {why}\n{j.detail()}"


def test_seeded_hinting_runs_of_every_shipped_design_in_legacy_kvm_mode():
    """The runs column of docs/scope.md's hinting table: six seeded runs (RandomScheduler(seed,
    400), the default world, legacy KVM mode, the guest hinting) of every shipped design, each
    with hints taken; a design the manifest's ``legacy-kvm`` world expects safe completes every
    one with no property broken (about 2 s in all)."""
    from dirtyproof.checked import run
    from dirtyproof.impl import Config, World
    from dirtyproof.impl.scheduler import RandomScheduler

    expect = MANIFEST["hinting"]["legacy-kvm"]
    cfg = dataclasses.replace(Config(), free_page_hinting=True, kvm_mode="legacy")
    for name, cls in DESIGNS.items():
        for seed in range(6):
            r = run(World(cfg, cls), RandomScheduler(seed, 400), keep_log=False)
            assert any(c[0] == "guest-hint" for c in r.choices), (name, seed)
            if expect[name]["verdict"] == SAFE:
                assert r.ok and r.completed, f"{name}: {r.violation} (replay: RandomScheduler({seed}, 400))"
