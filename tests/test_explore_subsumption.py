"""Budget subsumption (explore/choices.py ``dominates``, explore/engine.py ``_subsumer``): a state
whose world is a known node's and whose budgets that node's dominate is not explored. Sound if
dominance is a simulation: checked on the budgets alone for every vector over three threads, and
on the worlds of real explorations by replaying sampled subsumed states beside their subsumers."""
from __future__ import annotations

import itertools
from dataclasses import replace

from dirtyproof.explore import Bounds, default_config, explore
from dirtyproof.explore.bounds import slow_geometry
from dirtyproof.explore.choices import (CLOCK, GUEST, LAST, MOVES, READY, after_thread, allowed,
                                        canonical_budgets, dominates, enabled)
from dirtyproof.explore.engine import Explorer, _spend
from dirtyproof.explore.fingerprint import fingerprints
from dirtyproof.explore.reductions import Reductions
from dirtyproof.impl.designs import DESIGNS, Periodic
from dirtyproof.impl.geometry import BlockSpec, Geometry
from dirtyproof.mutants import MUTANTS

NAMES = ("migration", "timer", "watcher")
ONE_PAGE = Geometry((BlockSpec("odd0", 5, 1, 1),), clear_bmap_shift=1, word_bits=4)
SUBSETS = [tuple(c) for k in range(4) for c in itertools.combinations(NAMES, k)]
OFF = Reductions(subsumption=False)


def _at_least(a, b) -> bool:
    return a == b or dominates(a, b)


def _canonical_vectors():
    """Every canonical budget vector over small bounds, with its runnable set."""
    for wake, preempt, guest, clock, moves in itertools.product((False, True), (-1, 0, 1, 2), range(2), range(2),
                                                              range(2)):
        base = Bounds(guest_writes=guest, device_writes=0, clock_moves=clock, cancels=0, moves=moves,
                      preemptions=None if preempt < 0 else preempt, wakeup_preemption=wake).budgets()
        for runnable, fresh in itertools.product(SUBSETS, SUBSETS):
            for last in (None,) + (runnable if preempt >= 0 else ()):
                ready = None if base[READY] is None else (tuple(n for n in fresh if n in runnable), runnable)
                yield canonical_budgets(tuple(base[:LAST]) + (last, ready), list(runnable)), runnable


def test_dominance_is_a_simulation_of_the_budgets_over_three_threads():
    """For every pair of canonical budget vectors of one runnable set with ``dominates(a, b)``:
    every thread ``b`` allows, ``a`` allows; after that thread's step, and after any paid move,
    whatever the step makes runnable, ``a``'s budgets dominate (or equal) ``b``'s again; ``a`` has
    at least each kind of move ``b`` has left, so it can pay for each move ``b`` can. The relation
    is not empty (and holds between vectors of different move budgets), and it is strict."""
    by_runnable: dict = {}
    for b, r in _canonical_vectors():
        by_runnable.setdefault(r, set()).add(b)
    pairs = kinds = 0
    for r, vectors in by_runnable.items():
        rl = list(r)
        for a, b in itertools.product(vectors, vectors):
            if not dominates(a, b):
                continue
            pairs += 1
            assert not dominates(b, a), (a, b)
            assert set(allowed(b, rl)) <= set(allowed(a, rl)), (a, b, r)
            assert all(x >= y for x, y in zip(a[:MOVES + 1], b[:MOVES + 1]))
            kinds += a[:MOVES + 1] != b[:MOVES + 1]
            for r2 in SUBSETS:
                for n in allowed(b, rl):
                    assert _at_least(canonical_budgets(after_thread(a, rl, n), list(r2)),
                                     canonical_budgets(after_thread(b, rl, n), list(r2))), (a, b, r, n, r2)
                for slot in (GUEST, CLOCK):
                    if b[MOVES] and b[slot]:
                        assert _at_least(canonical_budgets(_spend(a, slot), list(r2)),
                                         canonical_budgets(_spend(b, slot), list(r2))), (a, b, slot, r2)
                assert _at_least(canonical_budgets(a, list(r2)), canonical_budgets(b, list(r2)))
    assert pairs > 100 and kinds > 10


def _successors(ex: Explorer, path, budgets) -> dict:
    """Every enabled choice after ``path``: choice -> (verdict, successor's world fingerprint,
    its canonical budgets)."""
    w = ex.replay(path)
    runnable = w.runnable_threads()
    threads, env = enabled(w, budgets, ex.periods, ex.pages, ex.refs)
    out = {}
    for ch, slot, thread in [(t, None, True) for t in threads] + [(c, s, False) for c, s in env]:
        w2 = ex.replay(path)
        v = ex._step(w2, ch)
        nb = (after_thread(budgets, runnable, ch[0]) if thread else
              budgets if slot is None else _spend(budgets, slot))
        nb = canonical_budgets(nb, w2.runnable_threads())
        out[tuple(ch)] = (None if v is None else v.invariant, None if v is not None else fingerprints(w2, nb)[2], nb)
    return out


def test_a_subsumed_state_can_do_nothing_its_subsumer_cannot():
    """Sampled subsumed states of real explorations (periodic's timer and background-v1's watcher
    racing the sender under a preemption bound; background-v1 with two clock moves, where nodes
    of one world differ in their moves left), replayed beside their subsumers: one world;
    every choice the subsumed state has, the subsumer has, with the same verdict, the same next
    world and budgets that dominate again."""
    runs = [(DESIGNS["periodic"], replace(default_config("legacy"), geometry=slow_geometry()),
             Bounds(guest_writes=1, device_writes=0, clock_moves=1, cancels=0, moves=2, preemptions=1)),
            (DESIGNS["background-v1"], default_config("legacy"),
             Bounds(guest_writes=1, device_writes=0, clock_moves=1, cancels=0, moves=1, preemptions=1,
                    wakeup_preemption=True)),
            # a paid clock move early and the free one when all sleep reach one world with
            # different clock budgets: subsumption by more moves left
            (DESIGNS["background-v1"], replace(default_config("legacy"), geometry=ONE_PAGE),
             Bounds(guest_writes=0, device_writes=0, clock_moves=2, cancels=0, moves=2, preemptions=0,
                    wakeup_preemption=True))]
    checked = by_moves = 0
    for cls, cfg, bounds in runs:
        ex = Explorer(cls, cfg, bounds)
        ex.sample_subsumptions = 12
        ex.run()
        assert ex.res.subsumed > 0
        for j, i, ch, budgets in ex.subsumptions:
            mine, theirs = ex.path(i) + [ch], ex.path(j)
            assert fingerprints(ex.replay(mine), ())[2] == fingerprints(ex.replay(theirs), ())[2]
            assert dominates(ex.budgets[j], budgets)
            by_moves += ex.budgets[j][:MOVES + 1] != budgets[:MOVES + 1]
            small, big = _successors(ex, mine, budgets), _successors(ex, theirs, ex.budgets[j])
            for c, (verdict, world, nb) in small.items():
                assert c in big, (cls.name, mine, c)
                assert big[c][:2] == (verdict, world), (cls.name, mine, c)
                assert verdict is not None or _at_least(big[c][2], nb), (cls.name, mine, c)
            checked += 1
    assert checked >= 24 and by_moves > 0


def test_subsumption_keeps_verdicts_and_counterexamples_and_saves_states():
    """With and without it: the same verdicts and counterexample lengths (two races of a second
    syncing thread under one preemption, and a counting bug), fewer distinct states on a design
    with a second thread, and the same exhausted verdict on periodic."""
    one = Bounds(guest_writes=1, device_writes=1, clock_moves=1, cancels=1, moves=1, preemptions=1)
    for name in ("timer-mutex-before-bql", "dirty-count-raw-bits"):
        a = explore(MUTANTS[name], default_config("manual"), one, reductions=OFF)
        b = explore(MUTANTS[name], default_config("manual"), one)
        assert a.violation is not None and b.violation is not None, name
        assert (a.violation.invariant, len(a.path)) == (b.violation.invariant, len(b.path)), name
    zero = Bounds(guest_writes=0, device_writes=0, clock_moves=0, cancels=0, moves=0, preemptions=1)
    a = explore(Periodic, default_config("manual"), zero, reductions=OFF)
    b = explore(Periodic, default_config("manual"), zero)
    assert a.exhaustive and b.exhaustive and b.subsumed > 0 and b.distinct < a.distinct
    assert "budget subsumption" in b.reductions.describe() and "budget subsumption" not in a.reductions.describe()


class SpinningPeriodic(Periodic):
    """Periodic whose send yields for ever: no path completes, with the timer beside it."""

    name = "spinning-periodic"

    def ram_find_and_save_block(self, w):
        while True:
            yield "spinning"


def test_a_livelock_is_decided_by_the_search_without_subsumption():
    """Subsumption may make a state look stuck whose only way to completion ran through a subsumed
    node; a livelock found with it on is decided by the same search with it off, whose result
    is reported (so the two agree)."""
    bounds = Bounds(guest_writes=0, device_writes=0, clock_moves=0, cancels=0, moves=0, preemptions=1)
    a = explore(SpinningPeriodic, default_config("legacy"), bounds, reductions=OFF)
    b = explore(SpinningPeriodic, default_config("legacy"), bounds)
    assert a.violation is not None and a.violation.invariant == "progress"
    assert (b.violation.invariant, b.violation.message, b.path) == (a.violation.invariant, a.violation.message, a.path)
    assert "budget subsumption" not in b.reductions.describe()
    assert b.redone > 0 and a.redone == 0
    from dirtyproof.explore.report import summary
    assert "decided by this search without it" in "\n".join(summary(b))


def test_a_node_with_fewer_moves_left_completes_where_its_subsumer_completes_for_free():
    """Nodes subsumed by one with more moves left (a paid clock move early, the free one later)
    count as completing where the subsumer completes without spending a move: legacy on one
    page with two writes and two clock moves is exhausted with no stuck state and no second
    search, with fewer states than without subsumption."""
    bounds = Bounds(guest_writes=1, device_writes=0, clock_moves=2, cancels=0, moves=3, preemptions=0,
                    wakeup_preemption=True)
    cfg = replace(default_config("legacy"), geometry=ONE_PAGE)
    # every deadline of the config: with only those legacy reads (explore/deadlines.py) no paid
    # clock move reaches a world the free one reaches later, and nothing is subsumed
    a = explore(DESIGNS["legacy"], cfg, bounds, reductions=replace(OFF, deadlines=False))
    b = explore(DESIGNS["legacy"], cfg, bounds, reductions=Reductions(deadlines=False))
    assert a.exhaustive and b.exhaustive and b.redone == 0 and 0 < b.subsumed and b.distinct < a.distinct
