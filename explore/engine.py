"""Breadth-first explicit-state exploration of the reference model, as TLC explores a TLA+ spec.

From the initial world every enabled choice of every actor is taken, breadth-first; every
transition is checked with every applicable check of the spec; states are deduplicated by
:func:`~dirtyproof.explore.fingerprint.fingerprint`. The first violation found is on a shortest
path (breadth-first order), and the search stops there.

A state is rebuilt by replaying its choice path on a fresh world (generators cannot be copied;
world steps are deterministic given the choices). Two things make that affordable:

- environment moves (writes, clock, cancel, switchover) run no generator, so all of a state's
  environment successors are computed on one live world, its data restored in place after each
  (:class:`~dirtyproof.explore.undo.Snapshot`);
- the last thread successor of a state takes the live world itself, which is kept (in a bounded
  cache) to expand that successor without a replay.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from dirtyproof.impl.scheduler import DesignCrash
from dirtyproof.impl.world import ModelError, World
from dirtyproof.spec import Violation

from . import checks as spec_checks
from .bounds import Bounds
from .choices import enabled, periods, terminal
from .fingerprint import fingerprint
from .reductions import Reductions
from .undo import Snapshot

CACHE_WORLDS = 4096


@dataclass
class Result:
    """The outcome of an exploration (TLC's summary)."""

    design: str
    config: object
    bounds: Bounds
    reductions: Reductions
    generated: int = 0
    distinct: int = 0
    depth: int = 0
    seconds: float = 0.0
    violation: Violation | None = None
    path: list = field(default_factory=list)
    truncated: int = 0              # states at max_depth, not expanded
    capped: bool = False            # stopped at max_states
    replays: int = 0
    completed_paths: int = 0

    @property
    def exhaustive(self) -> bool:
        """Whether every state within the bounds was explored."""
        return self.violation is None and not self.truncated and not self.capped

    @property
    def ok(self) -> bool:
        """Whether no violation was found."""
        return self.violation is None


class Explorer:
    """One exploration of ``design_cls`` on ``config`` within ``bounds``."""

    def __init__(self, design_cls, config, bounds: Bounds | None = None,
                 reductions: Reductions | None = None, progress=None):
        self.design_cls = design_cls
        self.config = config
        self.bounds = bounds or Bounds()
        self.red = reductions or Reductions()
        self.progress = progress
        self.periods = periods(config)
        probe = World(config, design_cls)
        self.checks = spec_checks.checks_for(probe.design)
        self.pages = list(probe.guest_pages)
        self.red.prepare(probe)
        # per node: parent index, choice from the parent, depth, remaining budgets
        self.parent: list[int] = [-1]
        self.choice: list = [None]
        self.depth: list[int] = [0]
        self.budgets: list[tuple] = [self.bounds.budgets()]
        self.seen: dict[int, int] = {}
        self.cache: dict[int, World] = {}
        self.res = Result(getattr(design_cls, "name", design_cls.__qualname__), config, self.bounds, self.red)

    # -- paths ----------------------------------------------------------------------------------
    def path(self, i: int) -> list:
        """The choices from the initial world to node ``i``."""
        out = []
        while i > 0:
            out.append(self.choice[i])
            i = self.parent[i]
        return out[::-1]

    def world(self, i: int) -> World:
        """A live world in node ``i``'s state: the cached one, or a replay of its path."""
        w = self.cache.pop(i, None)
        if w is not None:
            return w
        self.res.replays += 1
        w = World(self.config, self.design_cls)
        for ch in self.path(i):
            w.step(ch)
            # checks may keep state of their own on the world (bmap-full-after-setup marks the
            # attempt checked): run them as the first visit did, so the replay is the same state
            spec_checks.check(w, self.checks)
        return w

    # -- one transition ---------------------------------------------------------------------------
    def _step(self, w: World, ch) -> Violation | None:
        try:
            w.step(ch)
        except ModelError as exc:
            return Violation(exc.invariant, str(exc))
        except Exception as exc:  # a bug in design code, not a verdict
            raise DesignCrash(f"design {self.res.design!r} crashed at {ch}: {type(exc).__name__}: {exc}") from exc
        v = spec_checks.check(w, self.checks)
        if v is not None:
            return v
        if w.lock_waiters():
            cycle = w.deadlock()
            if cycle:
                return Violation("progress", f"deadlock: {cycle}")
        return None

    def _add(self, w, i: int, ch, budgets) -> int | None:
        """Record the state ``w`` reached from node ``i`` by ``ch``; its node index if new."""
        self.res.generated += 1
        fp = fingerprint(w, (budgets, self.red.key(w)))
        if fp in self.seen:
            return None
        j = len(self.parent)
        self.seen[fp] = j
        self.parent.append(i)
        self.choice.append(list(ch))
        self.depth.append(self.depth[i] + 1)
        self.budgets.append(budgets)
        return j

    def _fail(self, i: int, ch, v: Violation) -> Result:
        self.res.violation = v
        self.res.path = self.path(i) + ([list(ch)] if ch is not None else [])
        return self.res

    # -- the search -------------------------------------------------------------------------------
    def run(self) -> Result:
        """Explore breadth-first until the bounded space is exhausted or a check fails."""
        t0 = time.perf_counter()
        try:
            return self._run()
        finally:
            self.res.seconds = time.perf_counter() - t0
            self.res.distinct = len(self.parent)

    def _run(self) -> Result:
        b = self.bounds
        w0 = World(self.config, self.design_cls)
        self.seen[fingerprint(w0, (self.budgets[0], self.red.key(w0)))] = 0
        self.cache[0] = w0
        queue = deque([0])
        last_report = time.perf_counter()
        while queue:
            i = queue.popleft()
            d = self.depth[i]
            self.res.depth = max(self.res.depth, d)
            if d >= b.max_depth:
                self.res.truncated += 1
                self.cache.pop(i, None)
                continue
            if len(self.parent) >= b.max_states:
                self.res.capped = True
                break
            w = self.world(i)
            budgets = self.budgets[i]
            threads, env = enabled(w, budgets, self.periods, self.pages)
            threads, env = self.red.filter(w, threads, env)
            if not threads and not env:
                if terminal(w):
                    self.res.completed_paths += 1
                    continue
                return self._fail(i, None, Violation(
                    "progress", "no thread can run and no clock move wakes one: the migration never completes"))
            new: list[int] = []
            movable = [c for c in env if c[0] != ["mgmt", "start"]]
            if movable:
                snap = Snapshot(w)
                for ch, slot in movable:
                    nb = budgets if slot is None else budgets[:slot] + (budgets[slot] - 1,) + budgets[slot + 1:]
                    v = self._step(w, ch)
                    if v is not None:
                        return self._fail(i, ch, v)
                    j = self._add(w, i, ch, nb)
                    if j is not None:
                        new.append(j)
                    snap.restore()
            consuming = threads + [c[0] for c in env if c[0] == ["mgmt", "start"]]
            for k, ch in enumerate(consuming):
                wt = w if k == len(consuming) - 1 else self.world(i)
                v = self._step(wt, ch)
                if v is not None:
                    return self._fail(i, ch, v)
                j = self._add(wt, i, ch, budgets)
                if j is not None:
                    new.append(j)
                    if wt is w and len(self.cache) < CACHE_WORLDS:
                        self.cache[j] = wt
            queue.extend(new)
            if self.progress is not None and time.perf_counter() - last_report > 5:
                last_report = time.perf_counter()
                self.progress(self.res, len(self.parent), len(queue), d)
        return self.res


def explore(design_cls, config, bounds: Bounds | None = None, reductions: Reductions | None = None,
            progress=None) -> Result:
    """Explore ``design_cls`` on ``config`` within ``bounds``; see :class:`Explorer`."""
    return Explorer(design_cls, config, bounds, reductions, progress).run()


__all__ = ["Explorer", "Result", "explore"]
