"""Background-v1's loss through the window between the exact sync's ``bql_unlock()`` and
``ram_save_iterate``'s ``qemu_mutex_lock(&bitmap_mutex)``, which the model keeps since a release
then an acquire are two steps (impl/world.py ``World.acquire``).

The trace (tests/data/background-v1-watcher-in-the-iterate-window.json) is the explorer's shortest
counterexample on the 1-page slow-path block, legacy KVM, two writes and two clock moves, no
counted preemption but wake-up preemption (a woken watcher may take over): 43 steps. The default
suite replays it; the opt-in slow tier finds it again by exhaustive search, as the deep bound's
last run (tests/test_explore_gate.py ``test_deep_bound_verdict_is_the_manifests``, about 200 s of
CPU).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dirtyproof.checked import replay
from dirtyproof.cli.main import main
from dirtyproof.explore import Bounds, default_config
from dirtyproof.impl.designs import BackgroundV1
from dirtyproof.impl.geometry import BlockSpec, Geometry
from dirtyproof.impl.steps import BMAP_TAKE, SYNC_DONE, WAIT, WATCHER_DONE
from dirtyproof.impl.trace import Trace
from dirtyproof.impl.world import World

TRACE = Path(__file__).parent / "data" / "background-v1-watcher-in-the-iterate-window.json"
BOUNDS = Bounds(guest_writes=2, device_writes=0, clock_moves=2, cancels=0, moves=4, preemptions=0,
                wakeup_preemption=True)


def one_page_world():
    """The explored world: the default config on one 1-page slow-path block, legacy KVM."""
    geo = Geometry((BlockSpec("odd0", 5, 1, 1),), clear_bmap_shift=1, word_bits=4)
    return replace(default_config("legacy"), geometry=geo)


def test_the_deep_bound_is_this_world_and_bound():
    """The ``deep`` bound's entry after the default bound (explore/portfolio.py) is the world and
    bound this trace was found in, so ``check --explore-bound deep`` finds it."""
    from dirtyproof.explore.portfolio import deep_entries
    (e,) = deep_entries()
    assert e.modes == ("legacy",) and e.config_for("legacy") == one_page_world() and e.bounds == BOUNDS


def _steps(t):
    """``(world, [(thread, step record)])``: the trace's choices on a fresh world, with the record
    of each thread step (environment moves leave ``None``)."""
    w = World(t.config, BackgroundV1)
    out = []
    for ch in t.steps:
        w.step(list(ch))
        out.append((ch[0], w.last_step))
    return w, out


def test_the_watcher_syncs_between_the_exact_sync_and_the_send_and_a_write_is_lost():
    """Replayed: the migration thread's exact sync does not complete (a write came), it drops the
    BQL and ends its step waiting for bitmap_mutex, holding no lock; the woken watcher flips to
    background mode and runs a background sync in that window (the page goes into shadow_bmap
    while bmap still holds it); the page is sent and written again, a second background sync
    moves it into iter_bmap, and the next ordinary sync's prologue drops it: coverage breaks,
    the write is lost."""
    t = Trace.load(TRACE)
    assert t.design == "background-v1" and t.config == one_page_world()
    _, res = replay(t, extend=True)
    v = res.violation
    assert v is not None and v.invariant == "coverage" and v.page == 5 and res.violation_step == 42
    assert res.lost_write is not None
    _, steps = _steps(t)
    kinds = [(who, rec.kind if rec is not None else None) for who, rec in steps]
    window = next(i for i, (who, rec) in enumerate(steps)
                  if who == "migration" and rec.kind == WAIT and rec.lock == "bitmap_mutex")
    bg_done = kinds.index(("watcher", WATCHER_DONE))
    after = next(i for i in range(window + 1, len(steps)) if steps[i][0] == "migration")
    assert kinds[window - 1] == ("migration", SYNC_DONE)             # the exact sync ended just before
    assert window < bg_done < after and kinds[after] == ("migration", BMAP_TAKE)
    assert main(["replay", str(TRACE)]) == 1


def test_the_window_is_a_step_of_its_own_holding_no_lock():
    """The migration thread's step at the window is the world's WAIT for bitmap_mutex, taken
    with the lock free (no one holds it: not a blocked wait) and no lock held."""
    t = Trace.load(TRACE)
    w = World(t.config, BackgroundV1)
    for ch in t.steps:
        w.step(list(ch))
        a = w.actors.get("migration")
        if ch[0] == "migration" and a.step is not None and a.step.kind == WAIT and a.step.lock == "bitmap_mutex":
            assert a.held == () and a.blocked_on is None and w.lock_owner["bitmap_mutex"] is None
            break
    else:
        raise AssertionError("no window step in the trace")
