"""Short counterexamples for long-run finds (hunt/resmall.py): the failing world scaled down keeps
its shape (fast-path blocks on the word grid, slow-path ones off it, periods and switchover point
scaled alike), the re-search is deterministic, a safe design gives it nothing to report, and a
long preemption-arm find of a timer race comes back as a counterexample of tens of steps that
``dirtyproof replay`` reproduces."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dirtyproof.checked import run
from dirtyproof.cli.main import main
from dirtyproof.hunt.preempt import PREEMPT_STEPS
from dirtyproof.hunt.resmall import research_small, scale_config, small_worlds
from dirtyproof.hunt.runner import SWEEP_STEPS, _small_counterexample, _step_limit, sweep_seed
from dirtyproof.hunt.strategies import sweep_arm
from dirtyproof.impl import Config, World
from dirtyproof.impl.designs import Legacy
from dirtyproof.impl.geometry import named
from dirtyproof.impl.trace import Trace

sys.path.insert(0, str(Path(__file__).parent))
from user_designs import EagerClearAfterUnlock  # noqa: E402

# The seed-0 sweep's first preemption-arm failure of EagerClearAfterUnlock that the ranking keeps
# (2492 steps; 1551 at schedule 35 before a release then an acquire ended a step)
EAGER_SCHEDULE = 31
# SlotsLockDroppedBetweenGetAndOr's first find in the seed-0 sweep (was 35 before a release then
# an acquire ended a step; measured: none of the first 90 schedules, 91 is)
SLOTS_SCHEDULE = 91
# What a reviewer can read: the counterexample's bound (53 steps when measured)
SHORT = 100


def test_scaled_world_keeps_its_shape():
    """Each smaller world of the mixed named world keeps a fast-path block on the word grid and a
    slow-path block off it, one block or both, with every period and the switchover point divided
    by the same factor; worlds come fewest pages first; a width not below the world's is refused."""
    cfg = Config(geometry=named("mixed"), kvm_mode="legacy", dirty_sync_timer_ms=5000, switchover_pages=4)
    worlds = small_worlds(cfg, page=70)          # page 70 is in the slow-path block odd0
    assert [w.pages for w in worlds] == sorted(w.pages for w in worlds)
    assert {(w.word_bits, w.block) for w in worlds} == {(b, k) for b in (4, 8, 16) for k in ("odd0", None)}
    for w in worlds:
        geo = w.config.geometry
        paths = {b.name: b.fast_path for b in geo.blocks}
        assert paths == ({"odd0": False} if w.block else {"ram0": True, "odd0": False})
        assert w.config.dirty_sync_timer_ms == 5000 // w.factor
        assert w.config.switchover_pages == 4 // w.factor
        assert w.config.kvm_mode == "legacy" and geo.word_bits == 64 // w.factor
    assert scale_config(cfg, 64) is None and scale_config(cfg, 12) is None


def test_safe_design_gives_the_research_nothing():
    """A correct design breaks nothing on the smaller worlds either: the re-search reports no
    find (so the long run would be kept), and it ran what it says it ran."""
    cfg = Config(geometry=named("aligned"), kvm_mode="manual")
    r = research_small(Legacy, cfg, "preempt", PREEMPT_STEPS, "coverage", 5, 0, 7, seconds=60, rounds=2)
    assert r.finds == [] and r.runs == 2 * len(small_worlds(cfg, 5)) and r.steps > r.runs * 100


def _eager_long_failure():
    """EagerClearAfterUnlock's long preemption-arm failure at sweep schedule EAGER_SCHEDULE."""
    cfg, sched = sweep_arm(EAGER_SCHEDULE, sweep_seed(0, EAGER_SCHEDULE), SWEEP_STEPS)
    res = run(World(cfg, EagerClearAfterUnlock), sched, keep_log=False, max_steps=_step_limit(SWEEP_STEPS, sched))
    assert res.violation.invariant == "coverage" and res.violation_step > 1000
    return cfg, res


def test_research_is_deterministic():
    """The same long failure gives the same re-search runs and finds twice (seeded from the sweep's
    seed and the schedule's index), and a find breaks the same property on a smaller world."""
    cfg, res = _eager_long_failure()
    a, b = (research_small(EagerClearAfterUnlock, cfg, "preempt", PREEMPT_STEPS, "coverage", res.violation.page,
                           0, EAGER_SCHEDULE, seconds=60) for _ in range(2))
    assert a.finds and (a.runs, a.steps) == (b.runs, b.steps)
    assert [(f.seed, f.choices, f.world.config) for f in a.finds] == [(f.seed, f.choices, f.world.config) for f in b.finds]
    assert all(f.violation.invariant == "coverage" and f.world.pages < cfg.geometry.total_pages for f in a.finds)


def test_long_find_gets_a_short_counterexample(tmp_path):
    """EagerClearAfterUnlock's long preemption-arm find comes back as a counterexample of the
    same property of at most SHORT steps on a smaller world, which the saved trace records and
    ``dirtyproof replay`` reproduces (exit 1); the report says which long run it stands for."""
    cfg, res = _eager_long_failure()
    f = _small_counterexample(EagerClearAfterUnlock, (res.violation_step, EAGER_SCHEDULE, cfg, res), 0, 60.0,
                              20000, str(tmp_path))
    assert f is not None and f.invariant == "coverage" and f.length <= SHORT, f.shrink.summary()
    assert f.config.geometry.total_pages < cfg.geometry.total_pages
    assert (f.sweep_index, f.sweep_arm, f.small_world.long_steps) == (EAGER_SCHEDULE, "preempt", res.violation_step + 1)
    # the report names the smaller world, its scaled periods included, and the long run it stands for
    assert "re-found on a smaller world" in str(f) and "dirty_sync_timer_ms=" in str(f) and f.lost_write is not None
    assert Trace.load(f.trace_path).config == f.config
    assert main(["replay", str(f.trace_path)]) == 1


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("DIRTYPROOF_SLOW") != "1", reason="slow tier: set DIRTYPROOF_SLOW=1")
def test_second_timer_race_gets_a_short_counterexample(tmp_path):
    """The other timer race, SlotsLockDroppedBetweenGetAndOr (a long find at sweep schedule
    SLOTS_SCHEDULE), also comes back short: at most 150 steps (108 when measured, on a 16-page world; its
    shrink takes 400-600 replays, so it is opt-in)."""
    from user_designs import SlotsLockDroppedBetweenGetAndOr

    cfg, sched = sweep_arm(SLOTS_SCHEDULE, sweep_seed(0, SLOTS_SCHEDULE), SWEEP_STEPS)
    res = run(World(cfg, SlotsLockDroppedBetweenGetAndOr), sched, keep_log=False,
              max_steps=_step_limit(SWEEP_STEPS, sched))
    assert res.violation.invariant == "coverage" and res.violation_step > 1000
    f = _small_counterexample(SlotsLockDroppedBetweenGetAndOr, (res.violation_step, SLOTS_SCHEDULE, cfg, res), 0,
                              60.0, 20000, str(tmp_path))
    assert f is not None and f.invariant == "coverage" and f.length <= 150, f.shrink.summary()
    assert main(["replay", str(f.trace_path)]) == 1
