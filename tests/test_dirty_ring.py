"""KVM's dirty ring (``Config.kvm_mode="dirty_ring"``, impl/kvm.py): per-vCPU buffers and rings,
the reap under ``slots_lock``, KVM_RESET_DIRTY_RINGS, the kick, the reaper thread and the backup
bitmap at the last stage; the rules ``ring-reset-after-record``, ``ring-kick-before-reap`` and
``ring-backup-at-last-stage``, each shown to flag a mutant.

Default tests take seconds (directed schedules on a four-page world, a few seeded runs, the
sweep's first schedules for the mutants); the hunts at the quality tier's budget and the
explorer's runs are ``slow`` and opt-in (``DIRTYPROOF_SLOW=1``).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dirtyproof.checked import resolve, run
from dirtyproof.impl import BlockSpec, Config, Geometry, World
from dirtyproof.impl.designs import DESIGNS, Legacy
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.impl.steps import RING_KICK, RING_PUBLISH, RING_REAP, RING_RESET
from dirtyproof.impl.world import NOVCPU, REAPER, BadChoice
from dirtyproof.mutants import RING_MUTANTS, load_manifest
from dirtyproof.spec import BY_ID, RULE
from dirtyproof.spec.invariants import check_coverage, marked_pages
from manifest_checks import assert_hunt_matches
from stepping import Driver

GEO = Geometry((BlockSpec("odd0", 1, 4, 1),), 0)      # pages 1..4, one slot, slow path
MANIFEST = load_manifest()
RING = MANIFEST["dirty_ring"]
TIER = MANIFEST["tier"]
RING_RULES = ("ring-reset-after-record", "ring-kick-before-reap", "ring-backup-at-last-stage")


def _cfg(**kw) -> Config:
    base = dict(geometry=GEO, vcpus=2, burst=4, switchover_pages=1, kvm_mode="dirty_ring")
    base.update(kw)
    return Config(**base)


def _sent_all(w) -> bool:
    return bool((w.last_read[1:5] >= 0).all()) and w.mig.phase == "active"


def test_config_is_checked_and_recorded():
    """Bad ring values are one ValueError each; the fields round-trip through a trace's config;
    only a dirty ring world has rings and the reaper thread (a thread of the VM: attempt 0)."""
    for bad in (dict(dirty_ring_size=0), dict(dirty_ring_size=3), dict(dirty_ring_size=1 << 17),
                dict(dirty_ring_size=True), dict(dirty_ring_buffer=-1), dict(dirty_ring_buffer=513),
                dict(dirty_ring_with_bitmap="yes"), dict(kvm_mode="ring")):
        with pytest.raises(ValueError):
            _cfg(**bad)
    # ignored outside ring mode (an engine may put one world in every mode in turn)
    assert not World(Config(dirty_ring_with_bitmap=True), Legacy).kvm.with_bitmap
    cfg = _cfg(dirty_ring_size=8, dirty_ring_buffer=0, dirty_ring_with_bitmap=True)
    assert Config.from_json(cfg.to_json()) == cfg
    assert not cfg.manual_protect                      # QEMU: no manual protect with the ring
    plain = World(Config(), Legacy)
    assert plain.kvm.rings == [] and REAPER not in plain.actors
    w = World(cfg, Legacy)
    assert len(w.kvm.rings) == 2 and w.actors[REAPER].attempt == 0


def test_a_write_goes_to_the_buffer_then_the_ring_and_both_count_for_coverage():
    """After every page was sent, a vCPU's first write to a page logs it in that vCPU's buffer
    only (no L1, L2 or bmap bit): coverage holds because the buffer is a layer; the kick moves it
    into the ring, still covered; a second write (page no longer protected) logs nothing."""
    d = Driver(Legacy, _cfg())
    d.ap("mgmt", "start")
    w = d.w
    d.until(lambda: _sent_all(w))
    d.ap("vcpu1", 2)
    assert w.kvm.buffers[1] == [2] and not w.L2.test(2) and not w.blocks[0].bmap.test(1)
    assert not w.kvm.L1.any() and marked_pages(w)[2] and check_coverage(w) is None
    d.ap("vcpu1", 2)
    assert w.kvm.buffers[1] == [2] and w.kvm.rings[1] == []
    w.current = w.actors["migration"]     # the kick as the sync's first step would do it
    w.kvm_cpu_synchronize_kick_all()
    w.current = None
    assert w.kvm.buffers[1] == [] and w.kvm.rings[1] == [[2, False]] and check_coverage(w) is None
    assert d.violation is None


def test_a_full_ring_stops_its_vcpu_and_wakes_the_reaper():
    """With a one-entry ring and no buffer, the vCPU's next first-write finds its ring full: it
    writes nothing (KVM_EXIT_DIRTY_RING_FULL) and the reaper, asleep for a second, may run now;
    its reap recycles the entry and the vCPU writes again."""
    d = Driver(Legacy, _cfg(dirty_ring_size=1, dirty_ring_buffer=0))
    d.ap(REAPER, None)                     # its first step: asleep for a second
    d.ap("mgmt", "start")
    w = d.w
    d.until(lambda: w.mig.phase == "active" and w.lock_owner["BQL"] is None)
    d.ap("vcpu0", 1)
    assert w.kvm.ring_full(0) and REAPER not in w.runnable_threads()
    v = int(w.src_version[3])
    assert "KVM_EXIT_DIRTY_RING_FULL" in d.ap("vcpu0", 3) and int(w.src_version[3]) == v
    assert REAPER in w.runnable_threads()
    for _ in range(6):
        if not w.kvm.rings[0]:
            break
        d.ap(REAPER, None)
    assert w.kvm.rings[0] == [] and w.kvm.L1c.test(1) and w.kvm.protected.test(1)
    d.ap("vcpu0", 3)
    assert int(w.src_version[3]) == v + 1 and d.violation is None


def test_the_log_sync_kicks_reaps_resets_then_publishes():
    """QEMU's kvm_log_sync_global: the kick, each vCPU's reap, KVM_RESET_DIRTY_RINGS (under
    slots_lock, the entries recorded in L1c), then one publication per slot; no
    KVM_CLEAR_DIRTY_LOG; no rule is broken."""
    d = Driver(Legacy, _cfg())
    d.ap("mgmt", "start")
    w = d.w
    d.until(lambda: _sent_all(w))
    for p, cpu in ((1, 0), (2, 1), (3, 0), (4, 1)):
        d.ap(f"vcpu{cpu}", p)
    start = len(d.kinds)
    d.ap("mgmt", "switchover")
    d.until(lambda: w.migration_done(), limit=600)
    sync = d.kinds[d.kinds.index(RING_KICK, start):]
    assert sync[:4] == [RING_KICK, RING_REAP, RING_REAP, RING_RESET] and sync[4] == RING_PUBLISH
    assert "kvm_clear" not in d.kinds
    assert d.violation is None and not d.checker.rule_violations
    assert (w.dest_version[1:5] == w.src_version[1:5]).all()


def test_writes_without_a_vcpu_reach_the_backup_bitmap_and_the_last_stage_collects_them():
    """Only with the backup bitmap does KVM write without a vCPU (the backup bitmap, L1, logs it),
    never while the VM is stopped; QEMU's last stage fetches it and the write reaches the
    destination; the mutant that skips it loses the write and the rule flags its last stage."""
    with pytest.raises(BadChoice):
        World(_cfg(), Legacy).step([NOVCPU, 1])
    for design, lost in ((Legacy, False), (RING_MUTANTS["ring-backup-bitmap-skipped"], True)):
        d = Driver(design, _cfg(dirty_ring_with_bitmap=True))
        d.ap("mgmt", "start")
        w = d.w
        d.until(lambda: _sent_all(w))
        d.ap(NOVCPU, 3)
        assert w.kvm.L1.test(3) and marked_pages(w)[3] and not w.kvm.ring_pages()
        d.ap("mgmt", "switchover")
        d.until(lambda: not w.vm_running, limit=600)
        with pytest.raises(BadChoice):
            w.step([NOVCPU, 2])
        d.until(lambda: w.migration_done(), limit=600)
        rules = [r.rule for r in d.checker.rule_violations]
        if lost:
            assert d.violation is not None and d.violation.invariant == "no-loss"
            assert rules == ["ring-backup-at-last-stage"]
        else:
            assert d.violation is None and not rules and int(w.dest_version[3]) == int(w.src_version[3])


@pytest.mark.parametrize("with_bitmap", (False, True))
def test_shipped_designs_break_nothing_on_seeded_runs(with_bitmap):
    """Every shipped design, two seeded random runs each (two vCPUs, the default world): no
    property and no rule broken, every run completes (the slow tier hunts them)."""
    for name, cls in DESIGNS.items():
        for seed in range(2):
            cfg = Config(kvm_mode="dirty_ring", dirty_ring_with_bitmap=with_bitmap)
            res = run(World(cfg, cls), RandomScheduler(seed, 200))
            assert res.violation is None and res.completed, (name, seed, str(res.violation))
            assert not res.rule_violations, (name, seed, [str(r) for r in res.rule_violations])


def _after_first_round(design, **kw) -> Driver:
    """A driver whose migration has sent every page once (the ring world of :func:`_cfg`)."""
    d = Driver(design, _cfg(**kw))
    d.ap("mgmt", "start")
    d.until(lambda: _sent_all(d.w))
    return d


def _rules(d: Driver) -> list[str]:
    return [r.rule for r in d.checker.rule_violations]


def test_reset_before_record_is_caught_by_coverage_and_its_rule_at_the_reset():
    """ring-reset-before-record: the next sync's reap resets the entries of pages 1 and 3 before
    they are marked: at that step they are in no layer (coverage), and the rule flags the
    same step."""
    d = _after_first_round(RING_MUTANTS["ring-reset-before-record"])
    d.ap("vcpu0", 1)
    d.ap("vcpu0", 3)                    # the buffer is full: both pages reach vcpu0's ring
    d.until(lambda: d.violation is not None)
    assert d.violation.invariant == "coverage" and d.w.last_step.kind == RING_RESET
    assert _rules(d) == ["ring-reset-after-record"]


def test_lazy_reset_loses_the_write_made_after_the_send():
    """ring-lazy-reset: the sync harvests page 1's entry (collected, not recycled) and publishes
    it; once the page is sent again the guest's next write finds it writable, so nothing logs
    it (coverage); the next reap's late reset is what the rule flags."""
    d = _after_first_round(RING_MUTANTS["ring-lazy-reset"], dirty_ring_buffer=0, switchover_pages=0)
    w = d.w
    d.ap("vcpu0", 1)
    v = int(w.src_version[1])
    d.until(lambda: int(w.last_read[1]) == v)
    assert w.kvm.rings[0] == [[1, True]] and d.violation is None
    d.ap("vcpu0", 1)
    assert d.violation is not None and d.violation.invariant == "coverage" and d.violation.page == 1


def test_sync_without_kick_breaks_the_rule_and_no_property():
    """ring-sync-no-kick: the sync reaps while vcpu0's buffer holds page 2: QEMU's rule
    ring-kick-before-reap, no property; the VM's stop flushes the buffer, the last stage
    collects it and the migration completes with every write."""
    d = _after_first_round(RING_MUTANTS["ring-sync-no-kick"])
    w = d.w
    d.ap("vcpu0", 2)
    assert w.kvm.buffers[0] == [2]
    d.ap("mgmt", "switchover")
    d.until(lambda: w.migration_done(), limit=600)
    assert d.violation is None and _rules(d) == ["ring-kick-before-reap"]
    assert (w.dest_version[1:5] == w.src_version[1:5]).all()


def test_every_ring_rule_is_a_rule_and_flags_a_ring_mutant():
    """Non-vacuity of the three rules: each is a RULE with its ``matters``, and some entry of the
    manifest's dirty_ring section names it."""
    named = {e["rule"] for w in RING["worlds"] for n, e in RING[w].items() if n in RING_MUTANTS}
    for rid in RING_RULES:
        assert BY_ID[rid].kind == RULE and BY_ID[rid].matters_when != "always"
        assert rid in named, rid


def test_ring_manifest_is_well_formed():
    """Each dirty ring world is valid Config overrides in ring mode and lists every shipped design;
    every ring mutant is in some world; entries use the manifest's fields and ids."""
    from dirtyproof.hunt.runner import check_overrides
    from dirtyproof.spec import INVARIANTS, PROPERTY, RUNTIME_CHECKS
    ids = {inv.id: inv.kind for inv in INVARIANTS} | {k: PROPERTY for k in RUNTIME_CHECKS}
    listed = set()
    for world, overrides in RING["worlds"].items():
        assert check_overrides(overrides) and overrides["kvm_mode"] == "dirty_ring"
        assert set(DESIGNS) <= set(RING[world]) <= set(DESIGNS) | set(RING_MUTANTS), world
        listed |= set(RING[world])
        for name, e in RING[world].items():
            assert (e["found_by"] is None) == (e["verdict"] == "safe") == (e["property"] is None), name
            assert e["property"] is None or ids[e["property"]] == PROPERTY, name
            assert e["rule"] is None or ids[e["rule"]] == RULE, name
            assert resolve(name) is (DESIGNS.get(name) or RING_MUTANTS[name])
    assert set(RING_MUTANTS) <= listed


def test_prove_says_in_one_line_that_it_claims_nothing_for_the_ring(tmp_path):
    """``prove --config dirty_ring/...`` is one line on stderr, exit 2: the per-page argument is
    not made for the ring."""
    p = subprocess.run([sys.executable, "-m", "dirtyproof.cli", "prove", "--design", "legacy",
                        "--config", "dirty_ring/mixed"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "per-page" in p.stderr and "dirty_ring" in p.stderr


def test_hunt_takes_the_ring_mode_and_its_manifest_world(tmp_path, capsys):
    """``hunt --kvm-mode dirty_ring`` compares with the manifest's dirty_ring section (a ring
    mutant by name, its expected verdict); ``--dirty-ring-with-bitmap`` without the mode is bad
    input."""
    from dirtyproof.cli.main import main
    assert main(["hunt", "--kvm-mode", "dirty_ring", "--design", "ring-lazy-reset", "--schedules", "8",
                 "--examples", "1", "--trace-dir", str(tmp_path)]) == 0
    assert "ok   ring-lazy-reset" in capsys.readouterr().out
    assert main(["hunt", "--dirty-ring-with-bitmap", "--design", "legacy"]) == 2
    assert "needs --kvm-mode dirty_ring" in capsys.readouterr().err


_SLOW = pytest.mark.skipif(not os.environ.get("DIRTYPROOF_SLOW"), reason="opt-in: DIRTYPROOF_SLOW=1")


@pytest.mark.slow
@_SLOW
@pytest.mark.parametrize("world,name", [(w, n) for w in RING["worlds"] for n in RING[w] if n != "_comment"])
def test_ring_hunt_gives_the_manifest_verdict(world, name, tmp_path):
    """Every shipped design and ring mutant, hunted at the quality tier's budget in each dirty
    ring world of the manifest, gets the recorded verdict."""
    from dirtyproof.hunt import hunt
    rep = hunt(resolve(name), examples=TIER["examples"], schedules=TIER["schedules"],
               shrink_budget=TIER["shrink_budget"], trace_dir=str(tmp_path),
               config_overrides=RING["worlds"][world])
    assert_hunt_matches(rep, RING[world][name])


@pytest.mark.slow
@_SLOW
@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_shipped_designs_explored_in_ring_mode(name):
    """Every shipped design, explored in a dirty ring world over the portfolio's first entry
    (every thread interleaving, no move): no violation."""
    from dirtyproof.explore.portfolio import gate_portfolio
    from dirtyproof.explore.engine import Explorer
    entry = gate_portfolio()[0]
    res = Explorer(DESIGNS[name], entry.config_for("dirty_ring"), entry.bounds).run()
    assert res.violation is None, str(res.violation)
