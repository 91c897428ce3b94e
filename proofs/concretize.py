"""Turn an abstract counterexample into a concrete schedule of the reference model and replay it.

The abstract path fixes the configuration (KVM mode, whether q's block is aligned) and the
property broken at q. The concrete schedule is searched for in a small world of that shape:
seeded schedules of the reference model, in seed order. A schedule counts only if it breaks the
same property on a page of the same kind as q (aligned or unaligned block: by the per-page
argument any such page is an instance of q), and its replay through ``scheduler.run`` (every spec
invariant checked after every step) breaks it again at the same step; otherwise concretization
fails loudly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from dirtyproof.impl import BlockSpec, Config, Geometry
from dirtyproof.impl.scheduler import RandomScheduler, run
from dirtyproof.impl.trace import Trace
from dirtyproof.impl.world import World

from .state import P_COMPLETED


class ConcretizationError(Exception):
    """The abstract counterexample could not be replayed in the reference model."""


@dataclass
class Concrete:
    """A replayed counterexample: trace path, page, invariant, the step list and its length."""

    trace: Trace
    path: Path | None
    page: int
    invariant: str
    steps: list
    violation_step: int


def small_geometry() -> Geometry:
    """The command line's mixed geometry: one aligned block of 64 pages, one unaligned of 35."""
    return Geometry.simple(aligned=1, unaligned=1, pages=64, shift=2)


def expected_invariant(last: dict) -> str:
    """The spec invariant the abstract bad state breaks."""
    if last.get("err"):
        return "lock-order"
    if last["phase"] == P_COMPLETED and not last["deq"]:
        return "no-loss"
    if last["log"] and not last["L1"] and not last["WP"]:
        return "wp-unlogged"
    if last["ready"] and last["stale"]:
        return "coverage"
    return "clear-before-read"


def concretize(design_spec: str, design_cls, kvm_mode: str, states: list, out: Path | None = None,
               seeds: int = 400, steps: int = 3000) -> Concrete:
    """Find and replay a concrete schedule breaking the abstract path's property at its page."""
    first, last = states[0], states[-1]
    geo = small_geometry()
    cfg = Config(geometry=geo, kvm_mode=kvm_mode)
    want = expected_invariant(last)
    for seed in range(seeds):
        w = World(cfg, design_cls)
        res = run(w, RandomScheduler(seed, steps), keep_log=False)
        v = res.violation
        if v is None or v.invariant != want or v.page is None or w.block_of(v.page).fast_path != first["fast"]:
            continue
        q = v.page
        trace = Trace(design_spec, cfg, [list(c) for c in res.choices], seed)
        w2, res2 = trace.replay(design_cls)
        v2 = res2.violation
        if v2 is None or v2.invariant != want or v2.page != q or res2.violation_step != res.violation_step:
            raise ConcretizationError(f"schedule of seed {seed} did not replay to {want} on page {q}")
        trace.labels = [r.label for r in res2.log]
        trace.violation = {"invariant": v2.invariant, "step": res2.violation_step, "page": v2.page,
                           "message": v2.message}
        path = trace.save(out) if out is not None else None
        return Concrete(trace, path, q, want, [(c, r.label) for c, r in zip(trace.steps, res2.log)],
                        res2.violation_step)
    raise ConcretizationError(f"no schedule of the reference model breaks {want} on page {q} "
                              f"({seeds} seeded schedules of {steps} steps tried): the abstract "
                              f"counterexample may be spurious")

