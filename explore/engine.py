"""Explicit-state exploration of the reference model, as TLC explores a TLA+ spec.

From the initial world every enabled choice of every actor is taken; every transition is checked
with every applicable check of the spec; states are deduplicated by
:func:`~dirtyproof.explore.fingerprint.fingerprint`. States are expanded cheapest first: by
environment moves spent, then depth (``moves``), or by depth alone (``bfs``); a violation is
reported when nothing cheaper is left, so it is on a cheapest path, and the search stops there.

A state is rebuilt by replaying its choice path on a fresh world (generators cannot be copied;
world steps are deterministic given the choices). Two things make that affordable:

- environment moves (writes, clock, cancel, switchover) run no generator, so all of a state's
  environment successors are computed on one live world, its data restored in place after each
  (:class:`~dirtyproof.explore.undo.Snapshot`);
- the last thread successor of a state takes the live world itself, which is kept (in a bounded
  cache) to expand that successor without a replay.
"""
from __future__ import annotations

import gc
import heapq
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from dirtyproof.impl.crash import design_label
from dirtyproof.impl.scheduler import DesignCrash
from dirtyproof.impl.watchdog import TIMEOUT_ENV
from dirtyproof.impl.world import ModelError, World
from dirtyproof.spec import Violation

from . import checks as spec_checks
from .bounds import Bounds
from .choices import MOVES, PREEMPT, after_thread, canonical_budgets, dominates, enabled, preempted, terminal
from . import deadlines as dl
from .fingerprint import fingerprints
from .footprint import recording, track, track_mig, writes_of
from dirtyproof.impl.config import DIRTY_RING

from .reductions import Reductions
from .undo import Snapshot

CACHE_WORLDS = 4096
# Expansion orders: ``moves`` expands states by environment moves spent, then depth, so a bug
# that needs few writes is found before the many interleavings of more writes are enumerated;
# ``bfs`` is plain breadth-first. Both report the cheapest counterexample in their order.
ORDERS = ("moves", "bfs")


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
    subsumed: int = 0               # states not made: a node of the same world with larger budgets was
    redone: int = 0                 # distinct states of a search with subsumption that found a stuck state,
                                    # decided again without it (this result is the second search's)
    completed_paths: int = 0
    rules: dict = field(default_factory=dict)   # rule id -> (Violation, shortest path found) : rules, not verdicts
    deadlines: object = None        # the clock targets' reference times and periods (explore/deadlines.Deadlines)
    dropped: int = 0                # distinct states of the runs started again on a new read (deadlines)
    pump: object = None             # a non-convergence lasso's evidence (explore/converge.Pumped), if the violation is one

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
                 reductions: Reductions | None = None, progress=None, order: str = "moves",
                 known: frozenset = frozenset()):
        """``known``: the reference times and periods to start with as read (explore/deadlines.py;
        a run that reads another starts again with it)."""
        if order not in ORDERS:
            raise ValueError(f"order {order!r}: expected one of {', '.join(ORDERS)}")
        self.design_cls = design_cls
        self.given_config = config
        self._broken: list = []          # rule violations of the transition being taken
        self.bounds = bounds or Bounds()
        self.red = reductions or Reductions()
        if config.kvm_mode == DIRTY_RING:
            # the footprints (explore/footprint.py) do not record the rings and vCPU buffers, so
            # no move commutes with a step in a dirty ring world as far as they can tell
            self.red = replace(self.red, por=False)
        # the worlds' config records which periods the code reads (explore/deadlines.py)
        self.config = dl.deadline_config(config) if self.red.deadlines else config
        self.progress = progress
        self.known = frozenset(known)
        self.restarts = 0
        self._set_deadlines()
        probe = World(self.config, design_cls)
        self.checks = spec_checks.checks_for(probe.design)
        self.pages = list(probe.guest_pages)
        self.order = order
        self.sample_duplicates = 0       # the soundness tests' sampling (set by them before run)
        self.sample_subsumptions = 0
        self._reset()

    def _set_deadlines(self) -> None:
        self.deadlines = (dl.deadlines_of(self.given_config, self.known, self.restarts) if self.red.deadlines
                          else dl.all_deadlines(self.given_config))
        self.periods, self.refs = self.deadlines.periods, self.deadlines.refs

    def _reset(self) -> None:
        """The search's own state, empty: a run starts (or starts again) from the initial world."""
        # per node: parent index, choice from the parent, depth, remaining budgets
        self.parent: list[int] = [-1]
        self.choice: list = [None]
        self.depth: list[int] = [0]
        self.budgets: list[tuple] = [self.bounds.budgets()]
        self.spent: list[int] = [0]
        self.afp: list[int] = [0]        # per node: its fingerprint modulo statistics (explore/converge.py)
        self.expanded: list[bool] = [False]
        self.total = self.bounds.moves
        self.heap: list = []
        self.seq = 0
        self.seen: dict[int, int] = {}
        self.worlds: dict[int, list[int]] = {}   # world fingerprint (budgets left out) -> its nodes
        self.subsumptions: list = []              # sampled (subsumer, parent, choice, budgets)
        self._livelock_seen = False
        self.weak: list = []      # (parent, subsumer, paid): subsumed by a node with more moves left
        self.edges: list[list[int]] = [[]]
        self.edge_choice: dict = {}
        self.finished: set[int] = set()   # completed end states, and states cut by a bound
        self.duplicates: list = []
        self.cache: dict[int, World] = {}
        self._open_hit = False           # a step of the expansion reached a known node not yet expanded
        self.res = Result(design_label(self.design_cls), self.given_config, self.bounds, self.red,
                          deadlines=self.deadlines)
        dl.start()

    # -- paths ----------------------------------------------------------------------------------
    def path(self, i: int) -> list:
        """The choices from the initial world to node ``i``."""
        out = []
        while i > 0:
            out.append(self.choice[i])
            i = self.parent[i]
        return out[::-1]

    def fresh(self) -> World:
        """A new initial world (switched to footprint recording when the reduction needs it). The
        design's ``attach`` runs here, so its reads count as the code's (a period it keeps for
        later comparisons is a deadline: explore/deadlines.py)."""
        on = dl._ON
        on[0] = self.red.deadlines
        try:
            w = World(self.config, self.design_cls)
        finally:
            on[0] = False
        self._new_reads()
        return track(w) if self.red.por else w

    def _new_reads(self) -> None:
        """Start the run again (:class:`~dirtyproof.explore.deadlines.NewDeadline`) if code read a
        reference time or period the clock targets leave out."""
        if dl.READ and not dl.READ <= self.known:
            raise dl.NewDeadline(dl.READ - self.known)

    def world(self, i: int) -> World:
        """A live world in node ``i``'s state: the cached one, or a replay of its path."""
        w = self.cache.pop(i, None)
        if w is not None:
            return w
        return self.replay(self.path(i))

    def replay(self, path) -> World:
        """A fresh world driven along ``path`` (each step's checks passed when first taken).

        Steps are not timed: each one yielded within the step time limit when it was first taken, and world
        steps are deterministic given the choices."""
        self.res.replays += 1
        w = self.fresh()
        with _untimed():
            for ch in path:
                w.step(ch)
                self._watch(w)
        return w

    def _watch(self, w: World) -> None:
        """After a step: switch a new attempt's ``MigrationState`` to the recording classes (the
        footprint's first: it switches a plain ``MigrationState`` only)."""
        if self.red.por:
            track_mig(w)
        if self.red.deadlines:
            dl.watch_mig(w)

    # -- one transition ---------------------------------------------------------------------------
    def _step(self, w: World, ch, tags: set | None = None) -> Violation | None:
        on = dl._ON
        on[0] = self.red.deadlines
        try:
            if tags is None:
                w.step(ch)
            else:
                with recording() as got:
                    w.step(ch)
                tags |= got
            on[0] = False
            self._watch(w)
        except ModelError as exc:
            return Violation(exc.invariant, str(exc))
        except Exception as exc:  # a bug in design code, not a verdict
            raise DesignCrash(f"design {self.res.design!r} crashed at {ch}: {type(exc).__name__}: {exc}") from exc
        finally:
            on[0] = False
        self._new_reads()
        for rv in spec_checks.rules(w, self.checks):
            self._broken.append(rv)
        v = spec_checks.check(w, self.checks)
        if v is not None:
            return v
        if w.lock_waiters():
            cycle = w.deadlock()
            if cycle:
                return Violation("progress", f"deadlock: {cycle}")
        return None

    def _note_rules(self, i: int, ch) -> None:
        """Record the rules the transition from node ``i`` by ``ch`` broke (the first, shortest,
        path for each rule: a rule violation is reported, not a verdict)."""
        broken, self._broken = self._broken, []
        for rv in broken:
            old = self.res.rules.get(rv.invariant)
            if old is None or self.depth[i] + 1 < len(old[1]):
                self.res.rules[rv.invariant] = (rv, self.path(i) + [list(ch)])

    def _cost(self, j: int):
        """The order in which nodes are expanded: by depth (``bfs``), or by environment moves
        spent, then depth (``moves``)."""
        if self.order == "bfs":
            return (0, self.depth[j])
        return (self.spent[j], self.depth[j])

    def _push(self, key, item) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (key, self.seq, item))

    def _add(self, w, i: int, ch, budgets) -> int | None:
        """Record the state ``w`` reached from node ``i`` by ``ch``; its node index if new. A node
        not yet expanded that is reached again by a shorter path takes that path."""
        self.res.generated += 1
        budgets = canonical_budgets(budgets, w.runnable_threads())
        fp, afp, wfp = fingerprints(w, budgets)
        j = self.seen.get(fp)
        if j is None and self.red.subsumption:
            j = self._subsumer(wfp, budgets, self.depth[i] + 1)
            if j is not None:
                self.res.subsumed += 1
                if len(self.subsumptions) < self.sample_subsumptions:
                    self.subsumptions.append((j, i, list(ch), budgets))     # for the simulation test
                if self.budgets[j][:PREEMPT] != budgets[:PREEMPT]:
                    # more moves left there: a way to completion from j may spend them, so for the
                    # livelock check this transition leads to completion only where j completes
                    # without a paid move (see _livelock)
                    self.weak.append((i, j, self.budgets[i][MOVES] != budgets[MOVES]))
                    self._open_hit |= not self.expanded[j]
                    return None
        if j is not None:
            self._open_hit |= not self.expanded[j]     # a known node still queued (the cycle proviso)
            self.edges[i].append(j)
            self.edge_choice.setdefault((i, j), list(ch))
            if len(self.duplicates) < self.sample_duplicates and self.res.generated % 7 == 0:
                self.duplicates.append((j, i, list(ch)))     # for the soundness test
            if not self.expanded[j] and self.depth[i] + 1 < self.depth[j]:
                self.parent[j], self.choice[j], self.depth[j] = i, list(ch), self.depth[i] + 1
                self._push(self._cost(j), j)
            return None
        j = len(self.parent)
        self.seen[fp] = j
        if self.red.subsumption:
            self.worlds.setdefault(wfp, []).append(j)
        self.parent.append(i)
        self.choice.append(list(ch))
        self.depth.append(self.depth[i] + 1)
        self.budgets.append(budgets)
        self.afp.append(afp)
        self.spent.append(self.total - budgets[MOVES])
        self.expanded.append(False)
        self.edges.append([])
        self.edges[i].append(j)
        self.edge_choice.setdefault((i, j), list(ch))
        self._push(self._cost(j), j)
        return j

    def _subsumer(self, wfp: int, budgets, depth: int) -> int | None:
        """A node of the same world whose budgets dominate ``budgets`` (:func:`dominates`) and
        that is no deeper than ``depth``: a new node with ``budgets`` there can do nothing it
        cannot, no later in the search order (its moves spent are no more, :func:`dominates`)
        and no nearer to ``max_depth``, so it is not made (budget subsumption, docs/explore.md
        "Reductions")."""
        for k in self.worlds.get(wfp, ()):
            if self.depth[k] <= depth and dominates(self.budgets[k], budgets):
                return k
        return None

    def _violation(self, i: int, ch, v: Violation, budgets) -> None:
        """Queue a violating transition at its cost: it is reported when no cheaper path is left."""
        spent = self.total - budgets[MOVES]
        key = (0, self.depth[i] + 1) if self.order == "bfs" else (spent, self.depth[i] + 1)
        self._push(key, ("violation", i, ch, v))

    def _keep(self, j: int, w: World) -> None:
        """Keep ``w`` (in node ``j``'s state) to expand ``j`` without a replay, while there is room."""
        if len(self.cache) < CACHE_WORLDS:
            self.cache[j] = w

    def _env(self, w, i, budgets, moves, new, spare: bool = False) -> Result | None:
        """Take every environment move in ``moves`` on the live world ``w``, restoring it after each;
        with ``spare`` (``w`` is needed for nothing else) the last move's world is kept instead."""
        snap = Snapshot(w) if len(moves) > 1 or not spare else None
        for k, ch_slot in enumerate(moves):
            ch, slot = ch_slot
            nb = budgets if slot is None else _spend(budgets, slot)
            v = self._step(w, ch)
            self._note_rules(i, ch)
            last = spare and k == len(moves) - 1
            if v is not None:
                self._violation(i, ch, v, nb)
            else:
                j = self._add(w, i, ch, nb)
                if j is not None:
                    new.append(True)
                    if last:
                        self._keep(j, w)
            if not last:
                snap.restore()
        return None

    def _threads(self, w, i, budgets, moves, new, tags, runnable=()) -> Result | None:
        """Take every thread step (and ``start``) in ``moves``; the last on ``w`` itself."""
        for k, ch in enumerate(moves):
            wt = w if k == len(moves) - 1 else self.world(i)
            nb = budgets if ch[0] == "mgmt" else after_thread(budgets, runnable, ch[0])
            v = self._step(wt, ch, tags)
            self._note_rules(i, ch)
            if v is not None:
                self._violation(i, ch, v, nb)
                continue
            j = self._add(wt, i, ch, nb)
            if j is not None:
                new.append(True)
                # the world is in j's state whether it was the live one or a replay: keeping
                # either saves j's first replay (it used to keep the live one only, so on
                # periodic two thirds of the replays rebuilt a world just thrown away)
                self._keep(j, wt)
        return None

    def _dependent(self, moves, tags, progressed: bool) -> list:
        """The environment moves to take now: those a thread step's footprint conflicts with, and
        management commands other than switchover and cancel. When no thread step reached a state
        not yet expanded (a cycle may be closing), every move, so none is postponed for ever."""
        if not progressed:
            return moves
        out = []
        for ch, slot in moves:
            conflicts = writes_of(ch)
            if conflicts is None or not conflicts.isdisjoint(tags):
                out.append((ch, slot))
        return out

    def _fail(self, i: int, ch, v: Violation) -> Result:
        self.res.violation = v
        self.res.path = self.path(i) + ([list(ch)] if ch is not None else [])
        return self.res

    # -- the search -------------------------------------------------------------------------------
    def run(self) -> Result:
        """Explore breadth-first until the bounded space is exhausted or a check fails."""
        t0 = time.perf_counter()
        try:
            with _young_gc():
                while True:
                    try:
                        res = self._run()
                        break
                    except dl.NewDeadline as new:
                        # a deadline the clock targets lacked: the search so far may have missed
                        # paths, so it is dropped and the run starts again with the larger set
                        dropped = self.res.dropped + len(self.parent)
                        self.known |= new.read
                        self.restarts += 1
                        self._set_deadlines()
                        self._reset()
                        self.res.dropped = dropped
        finally:
            self.res.seconds = time.perf_counter() - t0
            self.res.distinct = len(self.parent)
        if self._livelock_seen and self.red.subsumption and self.res.subsumed:
            # subsumption keeps every violation of a check, and never passes a state the search
            # without it would find stuck (see _livelock); but a state may look stuck whose only
            # way to completion ran through a subsumed node: the same search without subsumption
            # decides, and its result is the one reported
            again = Explorer(self.design_cls, self.given_config, self.bounds, replace(self.red, subsumption=False),
                             self.progress, self.order, known=self.known).run()
            again.seconds += self.res.seconds
            again.redone = self.res.distinct
            return again
        return res

    def _run(self) -> Result:
        b = self.bounds
        w0 = self.fresh()
        fp0, self.afp[0], wfp0 = fingerprints(w0, self.budgets[0])
        self.seen[fp0] = 0
        self.worlds[wfp0] = [0]
        self.cache[0] = w0
        self._push(self._cost(0), 0)
        last_report = time.perf_counter()
        reports = 0
        while self.heap:
            if ((self.sample_duplicates and len(self.duplicates) >= self.sample_duplicates) or
                    (self.sample_subsumptions and len(self.subsumptions) >= self.sample_subsumptions)):
                break                         # sampling for the soundness tests only
            key, _, item = heapq.heappop(self.heap)
            if isinstance(item, tuple):
                _, i, ch, v = item
                return self._fail(i, ch, v)
            i = item
            if self.expanded[i] or key != self._cost(i):
                continue                      # expanded already, or a stale entry of a shortened node
            self.expanded[i] = True
            d = self.depth[i]
            self.res.depth = max(self.res.depth, d)
            if d >= b.max_depth:
                self.res.truncated += 1
                self.finished.add(i)
                self.cache.pop(i, None)
                continue
            if len(self.parent) >= b.max_states:
                self.res.capped = True
                self._nonconvergence()
                return self.res
            w = self.world(i)
            budgets = self.budgets[i]
            runnable = w.runnable_threads()
            threads, env = enabled(w, budgets, self.periods, self.pages, self.refs)
            if preempted(budgets, runnable):
                # a switch the preemption bound forbids: for the livelock check this state counts
                # as one that may complete (as a state cut by max_depth), the bound being B's
                self.finished.add(i)
            if terminal(w):
                self.res.completed_paths += 1
                self.finished.add(i)
                continue
            if not threads and w.next_wakeup() is None and w.mig is not None and w.migration_active():
                # writes, clock moves and management change no lock, join or wake-up: stuck for ever
                self._push(key, ("violation", i, None, Violation(
                    "progress", "no thread can run and no clock move wakes one: the migration never completes")))
                continue
            new: list = []
            consuming = threads + [c[0] for c in env if c[0] == ["mgmt", "start"]]
            movable = [c for c in env if c[0] != ["mgmt", "start"]]
            if self.red.por and consuming and movable:
                # threads first, recording what each step touches; then only the environment
                # moves that do not commute with some enabled thread step (on a fresh replay:
                # the live world went to the last thread step)
                # moves taken whatever the footprints (a clock move that wakes a thread) go first,
                # on the live world, which saves the replay when no other move is needed
                tags: set = set()
                always = [c for c in movable if c[0][0] == "clock" and _wakes(w, c[0][1])]
                maybe = [c for c in movable if c not in always]
                if always:
                    self._env(w, i, budgets, always, new)
                before = len(new)
                self._open_hit = False
                self._threads(w, i, budgets, consuming, new, tags, runnable)
                # the cycle proviso: progress is a thread step reaching a state not yet expanded
                # (new or queued); only a state all of whose thread steps reach expanded ones
                # may be closing a cycle (docs/explore.md, "Reductions")
                maybe = self._dependent(maybe, tags, len(new) > before or self._open_hit)
                if maybe:
                    self._env(self.world(i), i, budgets, maybe, new, spare=True)
            else:
                if movable:
                    self._env(w, i, budgets, movable, new)
                if consuming:
                    self._threads(w, i, budgets, consuming, new, None, runnable)
            # progress from the first second, then every 5 s (a long run says how far it got)
            if self.progress is not None and time.perf_counter() - last_report > (1 if reports == 0 else 5):
                last_report = time.perf_counter()
                reports += 1
                self.progress(self.res, len(self.parent), len(self.heap), d)
        if not ((self.sample_duplicates and self.duplicates) or (self.sample_subsumptions and self.subsumptions)):
            if self.res.truncated:
                self._nonconvergence()
            if self.res.violation is None:
                self._livelock()
        return self.res

    def _nonconvergence(self) -> None:
        """A search cut by a bound: look on the cut paths for a loop that repeats modulo
        statistics and cannot converge (explore/converge.py), and report it as ``progress``."""
        from .converge import find_nonconvergence
        found = find_nonconvergence(self)
        if found is not None:
            self.res.violation, self.res.path = found

    def _livelock(self) -> None:
        """After an exhaustive search: a state from which no path reaches completion (or a state
        cut by the depth bound) is a ``progress`` violation, reported at the cheapest such state.
        With budget subsumption an edge to a subsumer stands for the subsumed node where it has as
        many moves left; where it has fewer (:meth:`_add`), the subsumed node counts as completing
        only if its subsumer completes without spending a move. A stuck state found is then decided
        again without subsumption (:meth:`run`)."""
        n = len(self.parent)
        back: list[list[int]] = [[] for _ in range(n)]
        free: list[list[int]] = [[] for _ in range(n)]     # the edges that spend no move
        for i, out in enumerate(self.edges):
            left = self.budgets[i][MOVES]
            for j in out:
                back[j].append(i)
                if self.budgets[j][MOVES] == left:
                    free[j].append(i)
        # a node subsumed by j with fewer moves left completes where j completes without spending
        # a move (the same thread steps and free moves; where its preemption bound forbids a step
        # it counts as may-complete, as every such node does)
        for i, j, paid in self.weak:
            if not paid:
                free[j].append(i)
        free_ok = _reach(self.finished, free, n)
        ok = _reach(set(self.finished) | {i for i, j, _ in self.weak if free_ok[j]}, back, n)
        stuck = sorted((i for i in range(len(self.parent)) if not ok[i] and self.expanded[i]),
                       key=lambda k: (self._cost(k), k))
        if not stuck:
            return
        self._livelock_seen = True
        if self.red.subsumption and self.res.subsumed:
            return                            # decided by a search without subsumption (run)
        bad = set(stuck)
        for i in stuck:                       # the cheapest state on a loop: report the lasso
            loop = self._loop(i, bad)
            if loop is not None:
                self._fail(i, None, Violation("progress", f"the last {len(loop)} steps loop back to the state "
                                              f"before them and no path completes the migration"))
                self.res.path += loop
                return
        self._fail(stuck[0], None, Violation("progress", "no path from this state completes the migration"))

    def _loop(self, start: int, within: set) -> list | None:
        """Choices of a shortest cycle from ``start`` back to it through ``within``, or ``None``."""
        prev = {start: None}
        frontier = [start]
        while frontier:
            nxt = []
            for i in frontier:
                for j in self.edges[i]:
                    if j == start:
                        steps, k = [], i
                        while k is not None and k != start:
                            steps.append(k)
                            k = prev[k]
                        chain = [start] + steps[::-1] + [start]
                        return [self._edge_choice(a, b) for a, b in zip(chain, chain[1:])]
                    if j in within and j not in prev:
                        prev[j] = i
                        nxt.append(j)
            frontier = nxt
        return None

    def _edge_choice(self, a: int, b: int):
        """A choice leading from node ``a`` to node ``b`` (recorded with each edge)."""
        return self.edge_choice[(a, b)]


def _reach(seeds, back: list, n: int) -> list[bool]:
    """Per node of ``n``: whether it reaches one of ``seeds`` along the edges ``back`` lists
    backwards (``back[j]``: the nodes with an edge to ``j``)."""
    ok = [False] * n
    todo = list(seeds)
    for i in todo:
        ok[i] = True
    while todo:
        j = todo.pop()
        for i in back[j]:
            if not ok[i]:
                ok[i] = True
                todo.append(i)
    return ok


# The youngest generation's collection threshold while exploring. Every world is a reference
# cycle (its design, the region wrappers and the threads' frames refer back to it), so each
# replayed world is freed by the cycle collector, not by reference counting; with the default
# threshold (700 allocations) the worlds kept for later expansion were promoted to the oldest
# generation and died there, and full collections (each walking every kept world) were about a
# third of the CPU time of a two-thread exploration. Collecting young objects less often lets
# most worlds die young. Memory only: the collector decides nothing the exploration computes.
YOUNG_GC_THRESHOLD = 20_000


@contextmanager
def _young_gc():
    """The cycle collector's youngest threshold raised to :data:`YOUNG_GC_THRESHOLD` inside (never
    lowered); the caller's thresholds are put back after."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], YOUNG_GC_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


@contextmanager
def _untimed():
    """No per-step time limit inside (``$DIRTYPROOF_STEP_TIMEOUT`` = 0), for replays of steps that
    already yielded in time; the caller's setting is put back after."""
    old = os.environ.get(TIMEOUT_ENV)
    os.environ[TIMEOUT_ENV] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[TIMEOUT_ENV]
        else:
            os.environ[TIMEOUT_ENV] = old


def _spend(budgets: tuple, slot: int) -> tuple:
    """The budgets after one move paid from ``slot`` (and from the all-moves budget)."""
    out = list(budgets)
    out[slot] -= 1
    out[MOVES] -= 1
    return tuple(out)


def _wakes(w: World, delta: int) -> bool:
    """Whether moving the clock by ``delta`` makes a sleeping thread runnable."""
    t = w.clock_ms + delta
    return any(not a.done and (wt := w.wake_time_ms(a)) is not None and w.clock_ms < wt <= t
               for a in w.actors.values())


def explore(design_cls, config, bounds: Bounds | None = None, reductions: Reductions | None = None,
            progress=None, order: str = "moves") -> Result:
    """Explore ``design_cls`` on ``config`` within ``bounds``; see :class:`Explorer`."""
    return Explorer(design_cls, config, bounds, reductions, progress, order).run()


__all__ = ["Explorer", "Result", "explore"]
