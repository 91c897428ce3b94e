"""Shrinking a failing schedule to a short one that fails the same way (delta debugging).

A schedule is a list of choices ``[actor, arg]`` (see :meth:`World.step`). :func:`shrink` takes
one that violates an invariant and searches, deterministically, for a shorter one that

* replays: every choice is enabled when it is taken (a :class:`BadChoice` makes a candidate
  invalid, as does a crash of the design's code), and
* reaches a violation of the *same* invariant (the schedule ends at the violating step; for
  ``no-loss`` that is the completion, so the candidate must complete).

The passes, repeated until none makes progress or the budget is spent:

1. chunk deletion (ddmin over chunks): remove runs of ``k`` consecutive choices for ``k`` from
   half the schedule down to 2, keeping every removal that still fails;
2. single-choice deletion;
3. simplification: merge consecutive clock steps, lower clock amounts, lower the page numbers of
   writes (toward pages the schedule already uses, then the first guest page), write as ``vcpu0``.

Replays are cheap: only the target invariant is checked (the first violation stops the run),
nothing is logged, and every candidate's outcome is cached. A successful candidate is cut right
after its violating step. The work is bounded by seconds and by replays; the result says whether
the search reached a fixpoint. The shrunk schedule is then re-run with every applicable invariant;
should another invariant now fire first, the shrink is redone with every invariant checked, so
the reported trace replays (``dirtyproof replay``) to the same invariant at its last step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from dirtyproof.impl import World
from dirtyproof.impl.scheduler import DesignCrash
from dirtyproof.checked import run
from dirtyproof.impl.world import BadChoice
from dirtyproof.spec import BY_ID, applicable

# Default bounds of one shrink (the fallback of a hunt; the quality tier passes its own).
SHRINK_SECONDS = 20.0
SHRINK_REPLAYS = 20000


class _OutOfBudget(Exception):
    """The shrink's time or replay budget is spent."""


@dataclass
class ShrinkResult:
    """What a shrink achieved."""

    choices: list               # the shortest failing schedule found, ending at the violating step
    invariant: str
    original_length: int
    replays: int                # candidates actually run (cache hits not counted)
    seconds: float
    fixpoint: bool              # True: no pass could shrink further; False: the budget ran out
    strict: bool = False        # True: every invariant was checked while shrinking (see module doc)

    @property
    def length(self) -> int:
        """Steps of the shrunk schedule."""
        return len(self.choices)

    def summary(self) -> str:
        """One line: sizes, replays, time and whether the search finished."""
        return (f"shrunk {self.original_length} -> {self.length} steps ({self.invariant}) in "
                f"{self.replays} replays, {self.seconds:.1f} s"
                f"{'' if self.fixpoint else ' (budget spent before a fixpoint)'}")


class Shrinker:
    """Delta debugging of one failing schedule for one design, config and invariant."""

    def __init__(self, design_cls, config, invariant: str, seconds: float = SHRINK_SECONDS,
                 max_replays: int = SHRINK_REPLAYS, strict: bool = False):
        self.design_cls = design_cls
        self.config = config
        self.invariant = invariant
        self.strict = strict
        probe = World(config, design_cls)
        if strict:
            self.invs = applicable(probe.design)
        else:
            # runtime checks (lock-order, progress by deadlock) need no predicate
            self.invs = (BY_ID[invariant],) if invariant in BY_ID else ()
        self.guest = probe.guest_pages or []
        self.deadline = time.perf_counter() + seconds
        self.max_replays = max_replays
        self.replays = 0
        self.cache: dict[tuple, tuple | None] = {}

    # ------------------------------------------------------------------------------------------
    def test(self, cand: tuple) -> tuple | None:
        """``cand`` cut after its violating step if it replays to the target invariant, else None."""
        if not cand:
            return None
        hit = self.cache.get(cand, False)
        if hit is not False:
            return hit
        if self.replays >= self.max_replays or time.perf_counter() > self.deadline:
            raise _OutOfBudget()
        self.replays += 1
        out = None
        try:
            res = run(World(self.config, self.design_cls), cand, invariants=self.invs, keep_log=False)
        except (BadChoice, DesignCrash):
            res = None
        if res is not None and res.violation is not None and res.violation.invariant == self.invariant:
            out = cand[:res.violation_step + 1]
        self.cache[cand] = out
        if out is not None:
            self.cache[out] = out
        return out

    # ------------------------------------------------------------------------------------------
    # passes: each takes the current schedule and returns a (possibly) shorter failing one
    def delete_chunks(self, cur: tuple, k: int) -> tuple:
        """Remove runs of ``k`` choices, from the end toward the start, keeping what still fails."""
        i = len(cur) - k
        while i >= 0:
            r = self.test(cur[:i] + cur[i + k:])
            if r is not None:
                cur = r
                i = min(i, len(cur)) - k
            else:
                i -= k
        return cur

    def ddmin(self, cur: tuple) -> tuple:
        """Chunk deletion with halving chunk sizes, then single-choice deletion."""
        k = len(cur) // 2
        while k >= 1:
            cur = self.delete_chunks(cur, k)
            k = min(k // 2, len(cur) // 2)
        return self.delete_chunks(cur, 1)

    def merge_clocks(self, cur: tuple) -> tuple:
        """Replace two consecutive clock steps by one of their sum."""
        i = 0
        while i + 1 < len(cur):
            a, b = cur[i], cur[i + 1]
            if a[0] == "clock" and b[0] == "clock":
                r = self.test(cur[:i] + (("clock", a[1] + b[1]),) + cur[i + 2:])
                if r is not None:
                    cur = r
                    continue
            i += 1
        return cur

    def lower_clocks(self, cur: tuple) -> tuple:
        """Lower each clock step's amount: the smallest of a short descending search that still fails."""
        for i in range(len(cur)):
            if i >= len(cur) or cur[i][0] != "clock":
                continue
            ms = cur[i][1]
            lo, hi = 1, ms          # hi fails; search the smallest failing amount in [lo, hi)
            while lo < hi:
                mid = (lo + hi) // 2
                r = self.test(cur[:i] + (("clock", mid),) + cur[i + 1:])
                if r is not None and len(r) <= len(cur):
                    cur, hi = r, mid
                    if i >= len(cur):
                        break
                else:
                    lo = mid + 1
        return cur

    def lower_pages(self, cur: tuple) -> tuple:
        """Write to lower pages (pages the schedule already writes first), and as ``vcpu0``."""
        first = self.guest[0] if self.guest else 0
        for i in range(len(cur)):
            if i >= len(cur):
                break
            who, page = cur[i]
            if not (who == "device" or who.startswith("vcpu")):
                continue
            used = sorted({c[1] for c in cur if c[0] == "device" or c[0].startswith("vcpu")})
            for p in sorted({first, *used}):
                if p >= page:
                    break
                r = self.test(cur[:i] + ((who, p),) + cur[i + 1:])
                if r is not None and len(r) <= len(cur):
                    cur = r
                    break
            who, page = cur[i] if i < len(cur) else (None, None)
            if who is not None and who.startswith("vcpu") and who != "vcpu0":
                r = self.test(cur[:i] + (("vcpu0", page),) + cur[i + 1:])
                if r is not None and len(r) <= len(cur):
                    cur = r
        return cur

    def run(self, choices) -> tuple[tuple, bool]:
        """Shrink ``choices``; return (best schedule, whether a fixpoint was reached)."""
        cur = tuple((c[0], c[1]) for c in choices)
        best = self.test(cur)
        if best is None:
            raise ValueError(f"the schedule does not replay to a {self.invariant} violation")
        try:
            while True:
                before = best
                for p in (self.ddmin, self.merge_clocks, self.lower_clocks, self.lower_pages):
                    best = p(best)
                if best == before:
                    return best, True
        except _OutOfBudget:
            return best, False


def _first_violation(design_cls, config, choices):
    """(invariant id or None, step) of a full replay with every applicable invariant."""
    res = run(World(config, design_cls), [list(c) for c in choices], keep_log=False)
    return (res.violation.invariant if res.violation is not None else None), res.violation_step


def shrink(design_cls, config, choices, invariant: str, seconds: float = SHRINK_SECONDS,
           max_replays: int = SHRINK_REPLAYS) -> ShrinkResult:
    """Shrink a schedule that violates ``invariant`` (see the module doc); deterministic for a
    given input, apart from where a time budget cuts the search."""
    t0 = time.perf_counter()
    sh = Shrinker(design_cls, config, invariant, seconds, max_replays)
    best, fixpoint = sh.run(choices)
    replays, strict = sh.replays, False
    inv, step = _first_violation(design_cls, config, best)
    if inv != invariant or step != len(best) - 1:
        # another invariant fires first when all are checked: redo with all of them checked
        left = max(1.0, seconds - (time.perf_counter() - t0))
        sh = Shrinker(design_cls, config, invariant, left, max_replays, strict=True)
        best, fixpoint = sh.run(choices)
        replays, strict = replays + sh.replays, True
    return ShrinkResult([list(c) for c in best], invariant, len(choices), replays,
                        time.perf_counter() - t0, fixpoint, strict)


def shrink_violation(found, seconds: float = SHRINK_SECONDS, max_replays: int = SHRINK_REPLAYS,
                     trace_dir: str | None = None):
    """Shrink a :class:`HuntViolation` and return a new, finalised one (step list and saved trace)
    for the shrunk schedule; its ``shrink`` attribute holds the :class:`ShrinkResult`."""
    res = shrink(found.design_cls, found.config, found.choices, found.invariant, seconds, max_replays)
    return finalise_shrunk(found, res, trace_dir)


def finalise_shrunk(found, res: ShrinkResult, trace_dir: str | None = None):
    """The finalised :class:`HuntViolation` (step list, saved trace) of ``found`` shrunk to ``res``."""
    from .report import HuntViolation

    run_res = run(World(found.config, found.design_cls), res.choices)
    exc = HuntViolation(found.design_cls, found.design_spec, found.config, run_res.choices,
                        [r.label for r in run_res.log], run_res.violation, run_res.violation_step)
    exc.finalise(trace_dir)
    exc.shrink = res
    return exc


__all__ = ["SHRINK_REPLAYS", "SHRINK_SECONDS", "ShrinkResult", "Shrinker", "finalise_shrunk", "shrink",
           "shrink_violation"]
