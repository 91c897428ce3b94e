"""Prover verdicts, non-vacuity, counterexample replay, counting lemmas and prover/hunter agreement."""
import pytest

from dirtyproof.cli.main import geometry_named
from dirtyproof.impl import Config, World
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.checked import run, replay
from dirtyproof.impl.trace import Trace
from dirtyproof.proofs.broken import BROKEN, EXPECTED
from dirtyproof.proofs.counting import broken_counting, broken_period_counter, prove_counting
from dirtyproof.proofs.registry import encoding_for
from dirtyproof.proofs.obligations import prove
from dirtyproof.proofs.runner import CONFIGS, expected_verdicts, prove_config
from dirtyproof.proofs.solver import QueryRunner

EXPECTED_VERDICTS = expected_verdicts()
SAFE = [(d, c) for d, m in EXPECTED_VERDICTS.items() for c, v in m.items() if v == "safe"]


@pytest.mark.parametrize("design,config", SAFE)
def test_safe_configs_are_proved_non_vacuously(design, config):
    mode, geo = config.split("/")
    obs = prove(encoding_for(DESIGNS[design]), mode, geo, QueryRunner())
    assert [o.verdict for o in obs] == ["proved"] * 3, [o.detail for o in obs]
    disabled = set(obs[1].vacuous)
    # only rules the configuration excludes may be disabled under the invariant
    allowed = {"migration.send_clear_q", "migration.sync_slow_clear", "watcher.sync_fold",
               "watcher.sync_modern_tail", "timer.sync_slow_clear", "watcher.sync_slow_clear"}
    for rid in disabled:
        slow_only = geo == "aligned" and ("slow" in rid or "no_fill" in rid)
        legacy_kvm = mode == "legacy" and rid in allowed
        watcher_never_miter = rid in ("watcher.sync_fold", "watcher.sync_modern_tail")
        manual_only_noclear = mode != "legacy" and rid.endswith("sync_slow_noclear")
        assert slow_only or legacy_kvm or watcher_never_miter or manual_only_noclear, rid


@pytest.mark.parametrize("design,config", SAFE[::3])
def test_safe_verdicts_agree_with_random_runs(design, config):
    mode, geo = config.split("/")
    cfg = Config(geometry=geometry_named(geo, 2), kvm_mode=mode)
    for seed in range(3):
        res = run(World(cfg, DESIGNS[design]), RandomScheduler(seed, 400), keep_log=False)
        assert res.ok, (seed, res.violation)


def test_unsafe_config_gives_a_replayed_counterexample(tmp_path):
    res = prove_config("background-v1", DESIGNS["background-v1"], "initially_set/mixed", QueryRunner(), tmp_path)
    assert res.verdict == "unsafe"
    # 76: one more abstract step than before issue 11, the watcher started while the state is SETUP
    assert res.bmc.confirmed and res.bmc.depth == 76
    tr = Trace.load(res.concrete.path)
    _, again = replay(tr)
    assert again.violation.invariant == "coverage" and again.violation.page == res.concrete.page
    assert not DESIGNS["background-v1"].__dict__.get("fast_path", False)


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_obligation_is_violated_by_a_broken_encoding(name):
    obs = {o.name: o for o in prove(BROKEN[name](), "manual", "mixed", QueryRunner())}
    assert obs[EXPECTED[name]].verdict == "violated"


def test_completion_obligation_needs_its_conjunct():
    obs = {o.name: o for o in prove(encoding_for(DESIGNS["legacy"]), "manual", "mixed", QueryRunner(),
                                    without=("completed",))}
    assert obs["completion"].verdict == "violated"


class UnknownRunner(QueryRunner):
    """A solver that never decides (as on a timeout)."""

    def check(self, name, *assertions):
        res = super().check(name, *assertions)
        res.status, res.model = "unknown", None
        return res


def test_unknown_is_a_failure_not_a_pass():
    obs = prove(encoding_for(DESIGNS["periodic"]), "manual", "mixed", UnknownRunner())
    assert [o.verdict for o in obs] == ["violated", "unknown", "unknown"] or \
        all(o.verdict != "proved" for o in obs)


def test_counting_lemmas():
    r = QueryRunner()
    assert all(status == "unsat" for _, status, _ in prove_counting(r))
    assert broken_counting(r) == "sat"
    assert broken_period_counter(r) == "sat"


def test_every_config_has_an_expectation():
    for d in DESIGNS:
        assert set(EXPECTED_VERDICTS[d]) == set(CONFIGS)
