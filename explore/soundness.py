"""Checking that fingerprints are sound: two states with one fingerprint behave alike.

Used by the tests: an exploration samples states reached again by a different path; for each
pair, both paths are replayed and every enabled choice taken from each, and the two sets of
(choice, verdict, successor fingerprint) must be equal.
"""
from __future__ import annotations

from .choices import after_thread, enabled
from .engine import Explorer, _spend
from .fingerprint import fingerprint


def successors(ex: Explorer, path, budgets) -> frozenset:
    """Every enabled choice after ``path`` with its verdict and successor fingerprint."""
    w = ex.replay(path)
    runnable = w.runnable_threads()
    threads, env = enabled(w, budgets, ex.periods, ex.pages, ex.refs)
    out = set()
    for ch, slot, thread in [(t, None, True) for t in threads] + [(c, s, False) for c, s in env]:
        w2 = ex.replay(path)
        v = ex._step(w2, ch)
        nb = (after_thread(budgets, runnable, ch[0]) if thread else
              budgets if slot is None else _spend(budgets, slot))
        out.add((tuple(ch), None if v is None else v.invariant, None if v is not None else fingerprint(w2, nb)))
    return frozenset(out)


def sampled_pairs(design_cls, config, bounds, samples: int = 40, reductions=None):
    """Explore, sampling up to ``samples`` states reached twice; yields (explorer, path1, path2, budgets)."""
    ex = Explorer(design_cls, config, bounds, reductions)
    ex.sample_duplicates = samples
    ex.run()
    for j, i, ch in ex.duplicates:
        p1, p2 = ex.path(j), ex.path(i) + [ch]
        if p1 != p2:
            yield ex, p1, p2, ex.budgets[j]


__all__ = ["successors", "sampled_pairs"]
