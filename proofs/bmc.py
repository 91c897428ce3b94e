"""Bounded model checking of the per-page transition system from the initial world: the
shortest sequence of rules (up to a stated depth) that reaches a state breaking a spec property
at q (coverage, write protection, clear-before-read, no loss at completion, no thread error).

The abstract state space is finite, so the search is breadth-first over the encoding evaluated
concretely (the shortest depth is exact); Z3 then re-checks the path found, step by step, against
the symbolic encoding (guards, updates and the final bad state), so a path is only reported if the
solver agrees. Unrolling the whole relation in Z3 was measured at 93 s for depth 21 (see
docs/proofs.md), far over the budget.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import z3

from dirtyproof.spec.inductive import BY_ID, marked

from .dual import AND, IMP, NOT
from .encoding import successor
from .solver import QueryRunner
from .state import P_COMPLETED, domain, initial, symbolic

DEFAULT_DEPTH = 200


def bad(s, enc):
    """A spec property fails at q: the negation of what every step must keep."""
    return NOT(AND(IMP(AND(s["ready"], s["stale"]), marked(s, enc)),
                   BY_ID["wp-unlogged"].pred(s, enc),
                   BY_ID["clear-before-read"].pred(s, enc),
                   IMP(s["phase"] == P_COMPLETED, s["deq"]),
                   NOT(s["err"])))


@dataclass
class BmcResult:
    """``found`` with the rule path and states, ``none`` up to ``depth``, or ``unknown``."""

    status: str
    depth: int
    seconds: float
    explored: int = 0
    path: list = None           # [(rule, facts)]
    states: list = None         # abstract states s0..s_depth
    confirmed: bool = False     # Z3 agreed the path is a path of the symbolic encoding


from .state import VARS  # noqa: E402


def _key(s):
    return tuple(s[v] for v in VARS)


def search(enc, kvm_mode: str, geometry: str, max_depth: int = DEFAULT_DEPTH,
           fast_values: tuple | None = None) -> BmcResult:
    """Breadth-first search from the initial world for the shortest path to a bad state.

    ``fast_values`` restricts q's block kind; the caller may drop ``True`` when the aligned
    configuration is proved safe (``fast`` never changes along a path, so no such path exists)."""
    t0 = time.perf_counter()
    rules = [r for r in enc.rules() if r.name != "stutter" and r.actor != "clock"
             and r.name not in ("write_other", "switchover")]
    facts = {r.id: [dict(zip(r.facts, v)) for v in itertools.product((False, True), repeat=len(r.facts))]
             for r in rules}
    starts = [initial(kvm_mode != "legacy", kvm_mode == "initially_set", fast)
              for fast in (fast_values or ((True,) if geometry == "aligned" else (True, False)))]
    parent = {}
    frontier = []
    for s in starts:
        parent[_key(s)] = None
        frontier.append(s)
    for depth in range(max_depth + 1):
        nxt = []
        for s in frontier:
            if bad(s, enc):
                return _result(parent, s, depth, t0, len(parent))
        if depth == max_depth:
            break
        for s in frontier:
            for r in rules:
                for f in facts[r.id]:
                    g, upd = r.fn(s, f)
                    if not g:
                        continue
                    t = successor(s, upd)
                    k = _key(t)
                    if k not in parent:
                        parent[k] = (_key(s), r, f)
                        nxt.append(t)
        frontier = nxt
        if not frontier:
            return BmcResult("none", depth, time.perf_counter() - t0, len(parent))
    return BmcResult("none", max_depth, time.perf_counter() - t0, len(parent))


def _result(parent, s, depth, t0, explored) -> BmcResult:
    path, states, k = [], [s], _key(s)
    while parent[k] is not None:
        pk, r, f = parent[k]
        path.append((r, f))
        states.append(dict(zip(VARS, pk)))
        k = pk
    return BmcResult("found", depth, time.perf_counter() - t0, explored, path[::-1], states[::-1])


def confirm(res: BmcResult, enc, kvm_mode: str, runner: QueryRunner, name: str) -> bool:
    """Z3 check that the path is one of the symbolic encoding: from the initial state, each step
    satisfies its rule's guard and update, and the last state is bad."""
    from .obligations import config_constraint
    sym = [symbolic(f"p{i}") for i in range(len(res.states))]
    cons = [domain(x) for x in sym]
    cons += [sym[0][v] == val for v, val in res.states[0].items()]
    cons.append(config_constraint(sym[0], kvm_mode, "mixed"))
    for i, (r, f) in enumerate(res.path):
        g, upd = r.fn(sym[i], {k: z3.BoolVal(v) for k, v in f.items()})
        nxt = successor(sym[i], upd)
        cons.append(g)
        cons += [sym[i + 1][v] == nxt[v] for v in nxt]
    cons.append(bad(sym[-1], enc))
    r = runner.check(name, *cons)
    res.confirmed = r.status == "sat"
    return res.confirmed
