"""The prover on the mutant corpus: every encoded mutant's encoding admits each real step of the
mutant's worlds (and the parent's encoding does not, so the runs exercise the change); the
prover calls each one unsafe, with the expected obligation failing and the expected property
broken by a Z3-confirmed abstract counterexample, in agreement with the manifest; and together
they violate the obligations (non-vacuity). Abstract level only: no concrete schedules."""
import pytest

from dirtyproof.cli.main import geometry_named
from dirtyproof.impl import Config, World
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.checked import run
from dirtyproof.mutants import MUTANTS, load_manifest
from dirtyproof.proofs.conformance import check_run
from dirtyproof.proofs.registry import encoding_for
from dirtyproof.proofs.mutant_encodings import MUTANT_ENCODINGS, NOT_EXPRESSIBLE, violated_property
from dirtyproof.proofs.runner import prove_config
from dirtyproof.proofs.solver import QueryRunner
from dirtyproof.spec import INVARIANTS

MANIFEST = load_manifest()["mutants"]
# (obligation that fails, property the shortest abstract counterexample breaks) in CONFIG
EXPECTED = {
    "read-before-clear": ("consecution", "coverage"),
    "clear-mask-range": ("consecution", "coverage"),
    "clear-no-reprotect": ("consecution", "coverage"),
    "nonatomic-xchg": ("consecution", "coverage"),
    "skip-slot-or": ("consecution", "coverage"),
    "no-final-sync": ("consecution", "no-loss"),
    "bmap-init-last-page-missing": ("initiation", "coverage"),
    "bmap-reused-on-restart": ("initiation", "coverage"),
    "forget-iter-fold": ("consecution", "coverage"),
    "last-stage-skips-bmap-take": ("consecution", "no-loss"),
}
ENCODED = sorted(EXPECTED)
CONFIG = "manual/mixed"          # the reference model's default KVM mode, both kinds of block
# configurations where a mutant's change cannot act (no CLEAR in legacy KVM mode; initially-set
# logging starts with every L1 bit set, so setup's bmap does not matter): proved safe there
SAFE = [("clear-mask-range", "legacy/mixed"), ("clear-no-reprotect", "legacy/aligned"),
        ("read-before-clear", "legacy/mixed"),
        ("bmap-init-last-page-missing", "initially_set/mixed"), ("bmap-reused-on-restart", "initially_set/aligned")]
PER_PAGE = ("coverage", "wp-unlogged", "clear-before-read", "no-loss")


def _parent_encoding(name):
    """The encoding of the design the mutant changes, projecting as the mutant's does."""
    enc = encoding_for(MUTANTS[name])
    parent = next(b for b in type(enc).__mro__[1:] if not b.__name__.startswith("_"))()
    if hasattr(enc, "project"):
        parent.project = enc.project
    return parent


def test_corpus_is_split_into_encoded_and_explained():
    """Every corpus mutant is encoded (and picked by class) or listed with the reason it cannot be."""
    assert {c.name for c in MUTANT_ENCODINGS} == set(EXPECTED)
    assert set(EXPECTED) | set(NOT_EXPRESSIBLE) == set(MUTANTS)
    assert not set(EXPECTED) & set(NOT_EXPRESSIBLE)
    for name in ENCODED:
        assert type(encoding_for(MUTANTS[name])) is MUTANT_ENCODINGS[MUTANTS[name]]
        assert type(encoding_for(MUTANTS[name])).design == name


def _world_config(name, mode, geo):
    # background syncs need idle time; the abstraction has no clock, so short waits are as good
    kw = dict(watcher_idle_ms=0, watcher_poll_ms=10) if name == "forget-iter-fold" else {}
    return Config(geometry=geometry_named(geo, 2), kvm_mode=mode, **kw)


@pytest.mark.parametrize("name", ENCODED)
def test_mutant_encoding_admits_every_real_step(name):
    """Seeded runs of the mutant in each KVM mode, every step projected on watched pages, are
    admitted by the mutant's encoding; in one of them the parent's encoding rejects a step."""
    enc, rep = encoding_for(MUTANTS[name]), None
    for seed, (mode, geo) in enumerate((("manual", "mixed"), ("legacy", "aligned"), ("initially_set", "mixed"))):
        rep = check_run(MUTANTS[name], _world_config(name, mode, geo), enc, seed, 300, pages=4, report=rep)
    assert rep.checked > 6000
    assert rep.ok, rep.mismatches[:2]
    contrast = ("manual", "aligned") if name == "forget-iter-fold" else ("manual", "mixed")
    # a few fixed seeds: background-v1's watcher starts in SETUP and in some schedules quits at
    # once (the helper-idle warning), and then no background sync exercises the change
    for seed in range(16):          # seed 7 is the first (issue 11: 2 seeds in 40 are)
        other = check_run(MUTANTS[name], _world_config(name, *contrast), _parent_encoding(name), seed, 300, pages=4)
        if not other.ok:
            break
    assert not other.ok, "the runs never exercise the mutant's change"


_PROVED: dict = {}


def proved(name, config=CONFIG):
    """The prover's result for a mutant in a configuration (abstract counterexample only)."""
    if (name, config) not in _PROVED:
        _PROVED[name, config] = prove_config(name, MUTANTS[name], config, QueryRunner(), None, replay=False)
    return _PROVED[name, config]


@pytest.mark.parametrize("name", ENCODED)
def test_mutant_is_unsafe_with_the_expected_obligation_and_property(name):
    """Unsafe in the default configuration: the expected obligation is violated (none is
    unknown), and the shortest counterexample is Z3-confirmed and breaks the expected property.
    The manifest agrees (every corpus mutant is unsafe for the hunter)."""
    res = proved(name)
    obligation, prop = EXPECTED[name]
    verdicts = {o.name: o.verdict for o in res.obligations}
    assert "unknown" not in verdicts.values(), verdicts
    assert verdicts[obligation] == "violated", verdicts
    assert res.verdict == "unsafe" and res.bmc.status == "found" and res.bmc.confirmed
    assert violated_property(res.bmc.states[-1], encoding_for(MUTANTS[name])) == prop
    assert res.verdict == MANIFEST[name]["verdict"]


def test_mutants_violate_initiation_and_consecution_and_break_the_completion_property():
    """Non-vacuity from the corpus. Initiation and consecution are each violated by some mutant.
    The completion obligation (Inv and completed imply dest = src) mentions no rule of a design,
    so no design's delta can violate it: every mutant leaves it proved, and the corpus breaks
    the completion *property* instead (no-final-sync completes with q's destination stale);
    proofs/broken.py's removed conjunct keeps the obligation itself non-vacuous."""
    results = {n: proved(n) for n in ENCODED}
    violated = {o.name for r in results.values() for o in r.obligations if o.verdict == "violated"}
    assert {"initiation", "consecution"} <= violated
    assert all(o.verdict == "proved" for r in results.values() for o in r.obligations if o.name == "completion")
    enc = encoding_for(MUTANTS["no-final-sync"])
    assert violated_property(results["no-final-sync"].bmc.states[-1], enc) == "no-loss"


@pytest.mark.parametrize("name,config", SAFE)
def test_where_the_change_cannot_act_the_mutant_is_proved_safe_and_runs_agree(name, config):
    """The prover's safe verdicts on mutants are checked like the shipped designs': seeded runs
    of the reference model in that configuration break no per-page property."""
    res = proved(name, config)
    assert res.verdict == "safe", [o.detail for o in res.obligations]
    mode, geo = config.split("/")
    invs = [i for i in INVARIANTS if i.id in PER_PAGE]
    for seed in range(2):
        r = run(World(_world_config(name, mode, geo), MUTANTS[name]), RandomScheduler(seed, 300), invariants=invs,
                keep_log=False)
        assert r.violation is None or r.violation.invariant not in PER_PAGE, (seed, r.violation)


def test_prove_command_on_a_mutant():
    """``dirtyproof prove --design read-before-clear`` prints the obligations and agrees with the
    manifest (exit 0); for a mutant the abstraction cannot express it says so, with the reason, and
    the seeded random runs judge it instead."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "dirtyproof.cli", "prove", "--design", "read-before-clear",
                        "--config", "manual/aligned"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for word in ("initiation", "consecution", "completion", "violated", "UNSAFE", "clear-before-read",
                 "manifest: unsafe"):
        assert word in r.stdout, word
    r = subprocess.run([sys.executable, "-m", "dirtyproof.cli", "prove", "--design", "timer-mutex-before-bql"],
                       capture_output=True, text=True, timeout=120)
    # no per-page encoding: said in one line, and the seeded random runs judge it instead
    assert r.returncode == 0 and "no per-page encoding" in r.stdout and "lock-order" in r.stdout, r.stdout + r.stderr


def test_a_rule_on_the_path_is_reported_as_a_rule_not_as_the_verdict():
    """read-before-clear's counterexample breaks QEMU's clear-before-read rule on its way, and
    the verdict rests on the coverage property it then breaks (issue 8 §3)."""
    from dirtyproof.proofs.mutant_encodings import rules_broken

    res = proved("read-before-clear")
    enc = encoding_for(MUTANTS["read-before-clear"])
    assert violated_property(res.bmc.states[-1], enc) == "coverage"
    assert "clear-before-read" in [r for _, r in rules_broken(res.bmc.states, enc)]
