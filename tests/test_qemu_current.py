"""QEMU 10.1 and 11.0 as shipped designs: their encodings are exercised by their own runs (the
parent's encoding rejects a step of them), the prover's exemptions for the skipped last-stage
clear are needed (without them consecution fails), and QEMU's rule clear-before-read stays a
rule: it is quiet for the skip QEMU makes with the VM stopped. Seconds each."""
from __future__ import annotations

import pytest

from dirtyproof.cli.main import geometry_named
from dirtyproof.impl import Config, World
from dirtyproof.impl.designs import DESIGNS, Qemu101, Qemu110
from dirtyproof.checked import run
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.proofs.conformance import check_run
from dirtyproof.proofs.designs import BaseEncoding, PeriodicEncoding, Qemu101Encoding, Qemu110Encoding
from dirtyproof.proofs.obligations import prove
from dirtyproof.proofs.project import ProjectionError
from dirtyproof.proofs.solver import QueryRunner


def _cfg(mode: str, geo: str = "mixed") -> Config:
    return Config(geometry=geometry_named(geo, 2), kvm_mode=mode)


def test_periodic_encoding_rejects_the_last_stage_without_chunk_clear():
    """qemu-10.1's own runs reach the last-stage take without the chunk clear, which periodic's
    encoding does not admit: the delta is exercised."""
    rep = check_run(Qemu101, _cfg("manual"), PeriodicEncoding(), 0, 250)
    assert not rep.ok
    assert any("bmap test-and-clear" in m[6] for m in rep.mismatches), rep.mismatches[:1]


def test_qemu_10_1_encoding_rejects_the_batched_slow_path():
    """qemu-11.0's slow-path steps are neither projected nor admitted by qemu-10.1's encoding."""
    class HookOnly(Qemu101Encoding):
        position_hooks = Qemu110Encoding.position_hooks
        project = Qemu110Encoding.project
    with pytest.raises(ProjectionError):
        check_run(Qemu110, _cfg("manual"), Qemu101Encoding(), 0, 250)
    rep = check_run(Qemu110, _cfg("manual"), HookOnly(), 0, 250)
    assert not rep.ok


@pytest.mark.parametrize("enc_cls", [Qemu101Encoding, Qemu110Encoding])
def test_the_last_stage_exemptions_are_needed(enc_cls, monkeypatch):
    """The invariant's last-stage exemptions (clear-before-read in the last stage, l1c-owed
    after the last-stage GET) are stated for every design; without them, QEMU 10.1's and 11.0's
    consecution fails in manual/mixed: the proof rests on them. (That the other designs prove
    with them is tests/test_proofs_verdicts.py.)"""
    from dirtyproof.proofs import inductive
    from dirtyproof.proofs.dual import OR
    monkeypatch.setattr(inductive, "in_the_last_stage", lambda s: OR())
    monkeypatch.setattr(inductive, "after_last_get", lambda s: OR())
    obs = {o.name: o for o in prove(enc_cls(), "manual", "mixed", QueryRunner())}
    assert obs["consecution"].verdict == "violated", obs["consecution"].detail
    assert "l1c-owed" in obs["consecution"].detail or "clear-before-read" in obs["consecution"].detail


def test_the_batched_slow_clear_flag_is_needed_and_not_general():
    """batched_slow_clear declares QEMU 11.0's sync order: without it 11.0's consecution fails;
    turned on for a design whose per-page slow path CLEARs q before its bmap step (legacy,
    periodic), the weaker l1c-owed admits a state no step of theirs keeps, and their
    consecution fails: it cannot be stated for every design."""
    plain = type("No_batched", (Qemu110Encoding,), {"batched_slow_clear": False})
    obs = {o.name: o for o in prove(plain(), "manual", "mixed", QueryRunner())}
    assert obs["consecution"].verdict == "violated" and "l1c-owed" in obs["consecution"].detail
    for base in (BaseEncoding, PeriodicEncoding):
        forced = type(f"{base.__name__}_batched", (base,), {"batched_slow_clear": True})
        obs = {o.name: o for o in prove(forced(), "manual", "mixed", QueryRunner())}
        assert obs["consecution"].verdict == "violated", base
        assert "l1c-owed" in obs["consecution"].detail and "Y_QDONE" in obs["consecution"].detail


@pytest.mark.parametrize("name", ["qemu-10.1", "qemu-11.0"])
@pytest.mark.parametrize("mode", ["manual", "initially_set"])
def test_clear_before_read_stays_quiet_for_the_last_stage_skip(name, mode):
    """The last stage reads pages whose chunk clear is still owed (QEMU 10.1 skips it); the rule
    clear-before-read matters only while the VM runs, so seeded runs break nothing."""
    owed_reads = []

    class Watched(DESIGNS[name]):
        def ram_save_page(self, w, rb, page):
            # a read in the last stage while the page's chunk clear is still owed: the case the
            # rule would flag if it did not know the VM is stopped
            if self.last_stage and rb.clear_bmap.test(rb.chunk_of(page)):
                owed_reads.append(page)
            return (yield from super().ram_save_page(w, rb, page))
    for seed in range(3):
        w = World(_cfg(mode, "aligned"), Watched)
        res = run(w, RandomScheduler(seed, 1500), keep_log=False)
        assert res.ok, (seed, res.violation)
    assert owed_reads, "no last-stage read with an owed chunk clear: the test shows nothing"


@pytest.mark.parametrize("mode", ["manual", "initially_set"])
def test_skipping_the_clear_while_the_vm_runs_is_flagged_by_the_rule(mode):
    """The mutant that sets last_stage in the exact query skips owed chunk clears with the VM
    running: the rule clear-before-read reports it (a rule, with no property broken: a skipped
    CLEAR leaves the L1 bit set, so nothing is lost), where qemu-10.1 itself reports nothing."""
    from dirtyproof.mutants import MUTANTS
    rules = set()
    for seed in range(2):
        res = run(World(_cfg(mode), MUTANTS["last-stage-set-at-exact-sync"]), RandomScheduler(seed, 3000),
                  keep_log=False)
        assert res.violation is None, (seed, res.violation)
        rules |= {rv.violation.invariant for rv in res.rule_violations}
    assert rules == {"clear-before-read"}, rules
    for seed in range(2):
        res = run(World(_cfg(mode), Qemu101), RandomScheduler(seed, 3000), keep_log=False)
        assert res.ok and not res.rule_violations, (seed, res.violation, res.rule_violations[:1])


def test_counting_check_runs_the_slow_path():
    """The counting check's slow-path world is not dead weight: it refutes qemu-11.0's batched
    slow path counting raw bits (its fast path counts right), and covers qemu-11.0 itself."""
    from dirtyproof.mutants import MUTANTS
    from dirtyproof.proofs.counting_conformance import check_counting
    bad = check_counting(MUTANTS["batched-slow-counts-raw"], QueryRunner(), samples=8)
    assert bad.verdict == "unsafe" and bad.refuted["migration_dirty_pages"] == "dirty-pages-count", bad.summary()
    assert check_counting(Qemu110, QueryRunner(), samples=8).verdict == "safe"
