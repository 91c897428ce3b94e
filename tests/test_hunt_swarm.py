"""The sweep's swarm schedules: every draw comes from the seed alone, the draws are broad (every
KVM mode, word width, block kind, vCPU count and feature switched off somewhere), and a swarm
counterexample's trace replays on the world it drew."""
from __future__ import annotations

from dirtyproof.cli.main import main
from dirtyproof.hunt import hunt
from dirtyproof.hunt.runner import sweep_seed
from dirtyproof.hunt.strategies import is_plain, sweep_arm
from dirtyproof.hunt.swarm import FEATURES, draw
from dirtyproof.impl import World
from dirtyproof.impl.config import KVM_MODES
from dirtyproof.impl.designs import Legacy
from dirtyproof.checked import run
from dirtyproof.impl.trace import Trace
from dirtyproof.mutants import MUTANTS

SEEDS = range(300)


def test_draws_come_from_the_seed_alone():
    """The same seed draws the same world, config and weights, and runs the same choices."""
    for seed in (0, 7, 123):
        assert draw(seed) == draw(seed)
        runs = []
        for _ in range(2):
            cfg, sched = sweep_arm(1, seed, 120)
            runs.append((cfg, run(World(cfg, MUTANTS["period-popcount"]), sched, keep_log=False).choices))
        assert runs[0] == runs[1]
    assert len({draw(s).config for s in SEEDS}) > 250


def test_draws_are_broad():
    """Across a few hundred seeds: every KVM mode, every word width, fast-path blocks at address 0
    and away from it, slow-path blocks, several memslots and blocks, 1-3 vCPUs, auto-converge off
    and on, drawn periods, and every feature switched off in some schedule and on in another."""
    draws = [draw(s) for s in SEEDS]
    cfgs = [d.config for d in draws]
    assert {c.kvm_mode for c in cfgs} == set(KVM_MODES)
    assert {c.geometry.word_bits for c in cfgs} == {4, 8, 16, 32, 64}
    assert {c.vcpus for c in cfgs} == {1, 2, 3}
    assert {c.auto_converge for c in cfgs} == {True, False}
    assert len({c.dirty_sync_timer_ms for c in cfgs}) > 2 and len({c.watcher_idle_ms for c in cfgs}) > 2
    assert len({c.burst for c in cfgs}) > 2 and len({c.switchover_pages for c in cfgs}) > 4
    blocks = [b for c in cfgs for b in c.geometry.blocks]
    assert any(b.fast_path and b.offset == 0 for b in blocks)
    assert any(b.fast_path and b.offset > 0 for b in blocks)
    assert any(not b.fast_path for b in blocks) and any(b.slots > 1 for b in blocks)
    assert any(len(c.geometry.blocks) == 3 for c in cfgs)
    for f in FEATURES:
        assert any(f in d.off for d in draws) and any(f not in d.off for d in draws), f
    # what a feature switched off means for the draw
    for d in draws:
        c = d.config
        assert ("vcpus" not in d.off or c.vcpus == 1) and ("device-writes" not in d.off or d.w_device == 0)
        assert ("auto-converge" not in d.off) == c.auto_converge
        assert "fast-path" not in d.off or not any(b.fast_path for b in c.geometry.blocks)
        assert "cancel" not in d.off or d.cancels == 0
        assert "clock-leaps" not in d.off or d.clocks == (0,)


def test_plain_arm_keeps_the_default_scheduler_on_named_worlds():
    """Every fourth schedule is a long run on a named world: one in three of them the plain random
    scheduler, the default world (mixed) in each KVM mode first; the others the preemption arm."""
    from dirtyproof.impl.geometry import named
    from dirtyproof.impl.scheduler import RandomScheduler
    from dirtyproof.hunt.preempt import PreemptScheduler
    from dirtyproof.hunt.swarm import SwarmScheduler

    plain = (3, 15, 27)
    arms = [sweep_arm(i, sweep_seed(0, i), 300) for i in plain]
    assert all(is_plain(i) for i in plain) and all(type(s) is RandomScheduler for _, s in arms)
    assert all(c.geometry == named("mixed") for c, _ in arms)
    assert {c.kvm_mode for c, _ in arms} == set(KVM_MODES)
    pre = [sweep_arm(i, sweep_seed(0, i), 300) for i in (7, 11, 19)]
    assert all(type(s) is PreemptScheduler for _, s in pre) and not any(is_plain(i) for i in (7, 11, 19))
    assert all(c.geometry == named("mixed") for c, _ in pre) and {c.kvm_mode for c, _ in pre} == set(KVM_MODES)
    assert isinstance(sweep_arm(2, 2, 300)[1], SwarmScheduler)


def test_swarm_counterexample_replays_on_its_drawn_world(tmp_path):
    """A counterexample the sweep finds names its schedule; its saved trace holds the drawn
    config, and ``dirtyproof replay`` reproduces the violation (exit 1)."""
    rep = hunt(MUTANTS["period-popcount"], examples=5, schedules=20, trace_dir=str(tmp_path))
    f = rep.found
    assert rep.found_by == "sweep" and not is_plain(f.sweep_index) and f.sweep_arm == "swarm"
    tr = Trace.load(f.trace_path)
    assert tr.config == draw(sweep_seed(0, f.sweep_index)).config
    assert "word_bits=" in str(f) and "vcpus=" in str(f)
    assert main(["replay", str(f.trace_path)]) == 1


class SixtyFourOnly(Legacy):
    """A design written before the word width existed: it reads an L2 word at 64 bits whatever the
    world's width (fine at 64 bits, out of range in a narrow-word world)."""

    name = "sixty-four-only"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        """Read the last L2 word the 64-bit way, then sync as the parent does."""
        # explicitly 64 bits: since f0625a1 L2's default word is the world's width
        w.L2.word((w.ram_pages - 1) // rb.word_bits, 64)
        return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))


def test_narrow_words_only_where_the_design_allows_them(tmp_path):
    """A design that crashes only in a narrow-word world gets full-width worlds from then on, and
    the hunt says so (a crash at 64 bits is still the design's crash)."""
    rep = hunt(SixtyFourOnly, examples=3, schedules=12, trace_dir=str(tmp_path))
    assert rep.schedules == 12 and len(rep.notes) == 1
    assert "-bit-word world" in rep.notes[0] and "run at 64-bit words" in rep.notes[0]
    clean = hunt(Legacy, examples=3, schedules=12, trace_dir=str(tmp_path))
    assert clean.notes == ()
