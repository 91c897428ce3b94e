"""The three obligations of an inductive-invariant proof over the per-page abstraction, with
their non-vacuity checks: initiation, consecution (one query per rule), completion."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import z3

from .inductive import CONJUNCTS, invariant

from .encoding import successor
from .solver import QueryRunner
from .state import (M_INIT, P_COMPLETED, P_SETUP, T_NONE, W_NONE, Y_NONE, domain, initial, symbolic)

GEOMETRIES = ("aligned", "mixed")
KVM_MODES = ("legacy", "manual", "initially_set")


def config_constraint(s, kvm_mode: str, geometry: str):
    """The configuration as constraints on the constant variables of a symbolic state."""
    parts = [s["manual"] == (kvm_mode != "legacy"), s["iset"] == (kvm_mode == "initially_set")]
    if geometry == "aligned":
        parts.append(s["fast"])
    return z3.And(*parts)


def lift(s: dict, tag: str):
    """Constraints equating a (partly concrete) state dict with a fresh symbolic state."""
    t = symbolic(tag)
    eqs = []
    for k, v in s.items():
        eqs.append(t[k] == v)
    return t, eqs


def pre_setup(s):
    """The state at the setup step of any attempt: fresh MigrationState, logging off, no sync or
    helper thread running; bitmaps, L2, protection and design globals are leftovers (free)."""
    return z3.And(s["mpc"] == M_INIT, s["phase"] == P_SETUP, z3.Not(s["ready"]), z3.Not(s["log"]),
                  z3.Not(s["L1"]), z3.Not(s["L1c"]), z3.Not(s["uns"]), s["stale"], z3.Not(s["deq"]),
                  z3.Not(s["su"]), z3.Not(s["sr"]), z3.Not(s["carry"]), z3.Not(s["pq"]), z3.Not(s["pc"]),
                  z3.Not(s["cpend"]), z3.Not(s["err"]), s["sy"] == Y_NONE, s["tpc"] == T_NONE,
                  s["wpc"] == W_NONE)


@dataclass
class Obligation:
    """One obligation's verdict: ``proved``, ``violated`` (with a counterexample) or ``unknown``."""

    name: str
    verdict: str
    seconds: float
    detail: str = ""
    queries: int = 0
    vacuous: list = field(default_factory=list)


def _as_bool(x):
    return z3.BoolVal(x) if isinstance(x, bool) else x


def _as_term(x, like):
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if isinstance(x, int):
        return z3.IntVal(x)
    return x


def _same(a, b):
    return isinstance(a, z3.ExprRef) and a.eq(b)


def _fresh_facts(rule, tag):
    return {f: z3.Bool(f"{f}_{tag}") for f in rule.facts}


def _cti(model, s, conj_post, enc, post) -> str:
    """Which conjuncts fail after the step, and the pre-state, for a counterexample to induction."""
    from .state import BOOLS, ENUMS
    def holds(x):
        return x if isinstance(x, bool) else not z3.is_false(model.eval(x, model_completion=True))
    failed = [c.id for c in CONJUNCTS if not holds(c.pred(post, enc))]
    pre = []
    for v in BOOLS:
        if z3.is_true(model.eval(s[v], model_completion=True)):
            pre.append(v)
    for v, names in ENUMS.items():
        x = model.eval(s[v], model_completion=True).as_long()
        if x:
            pre.append(f"{v}={names[x] if x < len(names) else x}")
    return f"breaks {', '.join(failed)} from state: {' '.join(pre)}"


def prove(enc, kvm_mode: str, geometry: str, runner: QueryRunner, without=()) -> list[Obligation]:
    """Initiation, consecution and completion of the invariant for ``enc`` in one configuration."""
    out = []
    rules = enc.rules()
    # -- initiation ----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    fails, vac, nq = [], [], 0
    for fast in ((True,) if geometry == "aligned" else (True, False)):
        init = initial(kvm_mode != "legacy", kvm_mode == "initially_set", fast)
        if not invariant(init, enc, without):
            fails.append(f"the initial world (fast={fast}) breaks the invariant")
    s = symbolic("i")
    cfg = config_constraint(s, kvm_mode, geometry)
    for r in rules:
        if (r.actor, r.name) != ("migration", "setup"):
            continue
        f = _fresh_facts(r, "i")
        g, upd = r.fn(s, f)
        post = successor(s, upd)
        pre = z3.And(domain(s), cfg, pre_setup(s), g)
        nq += 2
        res = runner.check(f"{enc.design}/{kvm_mode}/{geometry}/initiation", pre,
                           z3.Not(invariant(post, enc, without)))
        if res.status == "sat":
            fails.append(_cti(res.model, s, None, enc, post))
        elif res.status != "unsat":
            fails.append(f"unknown ({res.reason})")
        nv = runner.check(f"{enc.design}/{kvm_mode}/{geometry}/initiation-nonvacuity", pre)
        if nv.status != "sat":
            vac.append("setup")
    out.append(Obligation("initiation", "proved" if not fails and not vac else (
        "unknown" if any(x.startswith("unknown") for x in fails) else "violated"),
        time.perf_counter() - t0, "; ".join(fails + [f"vacuous: {v}" for v in vac]), nq, vac))
    # -- consecution -------------------------------------------------------------------------------
    # Inv(s) is built once; Inv(s') of each rule is Inv(s) with the updated variables substituted.
    t0 = time.perf_counter()
    fails, disabled, nq, unknown = [], [], 0, False
    s = symbolic("c")
    inv_s = _as_bool(invariant(s, enc, without))
    base = z3.And(domain(s), config_constraint(s, kvm_mode, geometry), inv_s)
    for i, r in enumerate(rules):
        f = _fresh_facts(r, f"c{i}")
        g, upd = r.fn(s, f)
        post = successor(s, upd)
        subst = [(s[v], _as_term(post[v], s[v])) for v in upd if not _same(post[v], s[v])]
        inv_post = z3.substitute(inv_s, *subst) if subst else inv_s
        pre = z3.And(base, _as_bool(g))
        nq += 2
        res = runner.check(f"{enc.design}/{kvm_mode}/{geometry}/consecution/{r.id}", pre, z3.Not(inv_post))
        if res.status == "sat":
            fails.append(f"{r.id} {_cti(res.model, s, None, enc, post)}")
        elif res.status != "unsat":
            unknown = True
            fails.append(f"{r.id}: unknown ({res.reason})")
        nv = runner.check(f"{enc.design}/{kvm_mode}/{geometry}/enabled/{r.id}", pre)
        if nv.status == "unsat":
            disabled.append(r.id)
        elif nv.status != "sat":
            unknown = True
            fails.append(f"{r.id}: non-vacuity unknown")
    out.append(Obligation("consecution", "proved" if not fails else ("unknown" if unknown else "violated"),
                          time.perf_counter() - t0, "; ".join(fails[:3]), nq, disabled))
    # -- completion ----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    s = symbolic("d")
    pre = z3.And(domain(s), config_constraint(s, kvm_mode, geometry), invariant(s, enc, without),
                 s["phase"] == P_COMPLETED)
    res = runner.check(f"{enc.design}/{kvm_mode}/{geometry}/completion", pre, z3.Not(s["deq"]))
    nv = runner.check(f"{enc.design}/{kvm_mode}/{geometry}/completion-nonvacuity", pre)
    verdict = {"unsat": "proved", "sat": "violated"}.get(res.status, "unknown")
    detail = "" if verdict == "proved" else ("a completed state with dest != src satisfies the invariant"
                                             if verdict == "violated" else res.reason)
    if nv.status != "sat":
        verdict, detail = ("violated" if nv.status == "unsat" else "unknown"), "vacuous: no completed state"
    out.append(Obligation("completion", verdict, time.perf_counter() - t0, detail, 2))
    return out
