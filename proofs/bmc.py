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
import operator
import time
from dataclasses import dataclass

import z3
from z3 import z3util

from .inductive import marked

from .dual import AND, IMP, NOT
from .encoding import successor
from .solver import QueryRunner
from .state import P_COMPLETED, domain, initial, symbolic

DEFAULT_DEPTH = 200


def bad(s, enc):
    """A spec *property* fails at q: coverage, the final copy, or a concurrency error. QEMU's rules
    (wp-unlogged, clear-before-read) are conjuncts of the inductive strengthening, not of
    ``bad``: a path that breaks only a rule is no lost write, so it is never "unsafe"."""
    return NOT(AND(IMP(AND(s["ready"], s["stale"]), marked(s, enc)),
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


_KEY = operator.itemgetter(*VARS)


def _key(s):
    return _KEY(s)


class _Reads(dict):
    """A state that records which variables a function reads (for :class:`Cached`)."""

    __slots__ = ("seen",)

    def __getitem__(self, k):
        self.seen.add(k)
        return dict.__getitem__(self, k)


def _getter(keys):
    if not keys:
        return lambda s: ()
    return operator.itemgetter(*keys)


class Cached:
    """A function of an abstract state, cached on the variables it reads.

    The first evaluation records the variables read; later states agreeing on them reuse the
    result. Should an evaluation read a variable not recorded before (a value-dependent read),
    the set grows and the cache is dropped, so the cache is exact: a deterministic function that
    read only ``keys`` computes the same result on any state that agrees on them."""

    __slots__ = ("fn", "keys", "get", "cache")

    def __init__(self, fn):
        self.fn, self.keys, self.get, self.cache = fn, frozenset(), _getter(()), {}

    def __call__(self, s):
        k = self.get(s)
        hit = self.cache.get(k, _MISS)
        if hit is _MISS:
            rec = _Reads(s)
            rec.seen = set()
            hit = self.fn(rec)
            if not rec.seen <= self.keys:
                self.keys = self.keys | rec.seen
                self.get = _getter(tuple(sorted(self.keys)))
                self.cache = {}
                k = self.get(s)
            self.cache[k] = hit
        return hit


_MISS = object()


class RuleTable:
    """The rules with every fact valuation, evaluated on concrete abstract states, cached.

    The search spends most of its time evaluating rules. Each actor's guards are evaluated
    together, cached on the variables they mention (found once by evaluating every guard on a
    symbolic state): a state costs one look-up per actor for the list of enabled rule instances,
    then one :class:`Cached` look-up per enabled instance for its updates. A guard is a function
    of the variables its symbolic form mentions (the dual operators evaluate the same text on
    both kinds of values); guards are evaluated concretely on every cache miss, and an instance
    the cache calls enabled is checked again against the rule's own result. The path found is
    re-checked by Z3 (:func:`confirm`) and re-simulated rule by rule before concretization."""

    def __init__(self, rules):
        sym = symbolic("g")
        name = {f"{v}_g": v for v in VARS}
        groups = {}
        for r in rules:
            for vals in itertools.product((False, True), repeat=len(r.facts)):
                f = dict(zip(r.facts, vals))
                g, _ = r.fn(sym, {k: z3.BoolVal(v) for k, v in f.items()})
                used = set()
                if isinstance(g, z3.ExprRef):
                    used = {name[str(x)] for x in z3util.get_vars(g)}
                grp = groups.setdefault(r.actor, [set(), []])
                grp[0] |= used
                grp[1].append((r, f, Cached(lambda s, r=r, f=f: r.fn(s, f))))
        self.groups = [(_getter(tuple(sorted(keys))), entries, {}) for keys, entries in groups.values()]

    def successors(self, s: dict):
        """``(rule, facts, updates)`` of every enabled rule instance at ``s``."""
        out = []
        for get, entries, cache in self.groups:
            k = get(s)
            enabled = cache.get(k)
            if enabled is None:
                enabled = cache[k] = [e for e in entries if e[0].fn(s, e[1])[0]]
            for r, f, c in enabled:
                g, upd = c(s)
                if not g:
                    raise AssertionError(f"{r.id}: guard cache disagrees with the rule")
                out.append((r, f, upd))
        return out


def search(enc, kvm_mode: str, geometry: str, max_depth: int = DEFAULT_DEPTH,
           fast_values: tuple | None = None) -> BmcResult:
    """Breadth-first search from the initial world for the shortest path to a bad state.

    ``fast_values`` restricts q's block kind; the caller may drop ``True`` when the aligned
    configuration is proved safe (``fast`` never changes along a path, so no such path exists)."""
    t0 = time.perf_counter()
    rules = [r for r in enc.rules() if r.name != "stutter" and r.actor != "clock"
             and r.name not in ("write_other", "switchover")]
    table = RuleTable(rules)
    is_bad = Cached(lambda s: bool(bad(s, enc)))
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
            if is_bad(s):
                return _result(parent, s, depth, t0, len(parent))
        if depth == max_depth:
            break
        for s in frontier:
            sk = None
            for r, f, upd in table.successors(s):
                t = dict(s)
                t.update(upd)
                k = _key(t)
                if k not in parent:
                    if sk is None:
                        sk = _key(s)
                    parent[k] = (sk, r, f)
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
