"""Turn an abstract counterexample into a schedule of the reference model, rule by rule, and replay it.

The abstract path (``proofs/bmc.py``) is a list of rules with their facts and the abstract states
s0..sn of one page q. Concretization:

1. **Check the path.** The rules are re-run on Python values from s0: every guard must hold, every
   successor must be the next state, s0 must be the initial world and sn must be bad. A path that
   fails this is not a path of the encoding (``ENCODING BUG``), whatever the reference model says.
2. **Group micro-steps.** A concrete atomic step of a thread is a run of silent rules ending in a
   yielding one. The search interleaves actors at every rule, so a silent rule may be followed by
   another actor's rule; such rules are moved later, past the other actor's rules, as long as the
   re-run path stays valid and still ends bad.
3. **Build a small world** of the path's configuration: the path's KVM mode, and q in a tiny
   unaligned block (a few pages, nothing else) or in one aligned 64-page block, as the path's
   ``fast`` says. The other pages of the block exist only so the counters and the sender's choices
   the abstraction leaves free (``migration_dirty_pages`` against the switchover threshold, which
   page the sender picks) can go either way; one page is sent per ``ram_save_iterate``
   (``burst=1``) and the threshold is set just below the block size.
4. **Follow the path.** A bounded depth-first search with backtracking keeps the invariant
   "the world projected onto q (``proofs/project.py``) is state ``s_i`` of the path". From index i,
   the rule's actor is stepped first: a thread step, or ``[vcpu0|device, q]`` for a write to q,
   or ``[mgmt, start|cancel]``. The step is accepted if q's projection becomes ``s_j`` for some
   j >= i that the actor's own rules reach from i (j = i is a stutter: the step concerned other
   pages or slots). A thread may leave the path for a few steps (sending another page) if it comes
   back to it. Only when that fails are *stutters* tried, steps that must leave q's projection
   unchanged: advancing the clock (to the next wake-up, or past the watcher's idle time),
   another thread's steps, a write to another page, the switchover. Stutters per index, steps
   per detour and the total work are bounded; (index, world fingerprint) pairs already explored
   are not explored again. Every step is checked with every spec invariant: a violation other than
   the path's on q kills the branch.
5. **Replay.** The schedule found is replayed from scratch with ``checked.run`` (every spec
   invariant after every step) and must break the same invariant on q at its last step, or
   concretization fails loudly (``ENCODING BUG``).

If the guided search exhausts its budget (which it does not for the shipped designs), the old
seeded random search is the last resort, and the result says so (``method="random-fallback"``).
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path

from dirtyproof.impl import BlockSpec, Config, Geometry
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.checked import run, replay
from dirtyproof.impl.trace import Trace
from dirtyproof.impl.world import BadChoice, ModelError, World
from dirtyproof.spec import applicable, check_step
from dirtyproof.spec.invariants import marked_pages

from .encoding import successor
from .project import ProjectionError, normalize, project
from .state import P_COMPLETED, VARS, initial, show

THREADS = ("migration", "timer", "watcher")
MAX_STUTTERS = 6          # stutter moves at one path index
MAX_DETOUR = 8            # steps a thread may spend off the path before coming back to it
NODE_BUDGET = 1500        # moves tried in one world
SECONDS_BUDGET = 20.0     # for the whole guided search


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
    method: str = "guided"          # guided, or random-fallback
    abstract_depth: int = 0
    seconds: float = 0.0
    moves: int = 0                  # moves the guided search tried
    notes: list = field(default_factory=list)

    @property
    def length(self) -> int:
        """Number of choices of the schedule."""
        return len(self.trace.steps)


def small_geometry() -> Geometry:
    """The command line's mixed geometry: one aligned block of 64 pages, one unaligned of 35
    (used only by the random fallback)."""
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


# ---------------------------------------------------------------------------------------------
# 1-2: the abstract path
def _state_diff(a: dict, b: dict) -> str:
    return ", ".join(f"{v}: {a.get(v)!r} vs {b.get(v)!r}" for v in VARS if a.get(v) != b.get(v))


def check_path(enc, kvm_mode: str, path: list, states: list) -> None:
    """Re-run the abstract path on Python values; :class:`ConcretizationError` if it is not a path
    of the encoding from the initial world to a bad state."""
    from .bmc import bad
    if len(states) != len(path) + 1:
        raise ConcretizationError(f"ENCODING BUG: abstract path has {len(path)} rules but "
                                  f"{len(states)} states")
    s0 = states[0]
    init = initial(kvm_mode != "legacy", kvm_mode == "initially_set", bool(s0.get("fast")))
    if any(s0.get(v) != init[v] for v in VARS):
        raise ConcretizationError(f"ENCODING BUG: abstract path does not start in the initial world "
                                  f"({_state_diff(s0, init)})")
    s = s0
    for i, (r, f) in enumerate(path):
        g, upd = r.fn(s, f)
        if not g:
            raise ConcretizationError(f"ENCODING BUG: abstract step {i} ({r.id}) is not enabled in "
                                      f"state {i}: {show(s)}")
        s = successor(s, upd)
        if any(s[v] != states[i + 1].get(v) for v in VARS):
            raise ConcretizationError(f"ENCODING BUG: abstract step {i} ({r.id}) does not lead to "
                                      f"state {i + 1} ({_state_diff(s, states[i + 1])})")
    if not bad(s, enc):
        raise ConcretizationError("ENCODING BUG: the abstract path does not end in a bad state")


def _simulate(path, s0):
    s, out = s0, [s0]
    for r, f in path:
        g, upd = r.fn(s, f)
        if not g:
            return None
        s = successor(s, upd)
        out.append(s)
    return out


def group_steps(enc, path: list, states: list) -> tuple[list, list]:
    """The same counterexample with each silent rule directly followed by a rule of its own actor
    where possible (a concrete thread step runs its silent rules without interleaving)."""
    from .bmc import bad
    path = list(path)
    changed = True
    while changed:
        changed = False
        for k in range(len(path) - 1):
            r, r2 = path[k][0], path[k + 1][0]
            if r.yields or r2.actor == r.actor:
                continue
            cand = path[:k] + [path[k + 1], path[k]] + path[k + 2:]
            sts = _simulate(cand, states[0])
            if sts is not None and bad(sts[-1], enc):
                path, changed = cand, True
                break
    sts = _simulate(path, states[0])
    return path, sts


# ---------------------------------------------------------------------------------------------
# 3: the small world
def worlds_for(fast: bool, kvm_mode: str) -> list[tuple[Config, list[int]]]:
    """Candidate small worlds for the path's configuration, with the pages to try as q."""
    out = []
    if not fast:
        for n in (3, 4, 2):
            geo = Geometry((BlockSpec("odd0", 5, n),), clear_bmap_shift=1)
            pages = list(range(5, 5 + n))
            out.append((Config(geometry=geo, kvm_mode=kvm_mode, burst=1, switchover_pages=n - 2),
                        [pages[-1], pages[0]]))
    else:
        geo = Geometry((BlockSpec("ram0", 0, 64),), clear_bmap_shift=1)
        for t in (62, 63):
            out.append((Config(geometry=geo, kvm_mode=kvm_mode, burst=1, switchover_pages=t), [63, 0]))
    return out


# ---------------------------------------------------------------------------------------------
# 4: the guided search
def _frame_facts(actor) -> tuple:
    out, g = [], actor.gen
    while g is not None and inspect.isgenerator(g):
        f = g.gi_frame
        if f is None:
            break
        out.append((f.f_code.co_name, tuple(sorted((k, v) for k, v in f.f_locals.items()
                                                   if isinstance(v, (int, str, bool, type(None)))))))
        g = g.gi_yieldfrom
    return tuple(out)


def fingerprint(w: World) -> tuple:
    """What distinguishes two small worlds for the search (versions only as fresh/stale relations)."""
    parts = [bm.words.tobytes() for bm in w.layer_bitmaps().values()]
    parts.append(tuple(bool(x) for x in w.kvm.unsynced))
    parts.append((w.src_version == w.last_read).tobytes())
    parts.append((w.dest_version == w.src_version).tobytes())
    mig = w.mig
    if mig is not None:
        g = w.ghost
        parts.append((mig.phase, w.bitmaps_armed(), mig.migration_dirty_pages, mig.pss_block, mig.pss_page,
                      tuple(sorted((a, tuple(sorted(h.fetched)), tuple(sorted(h.taken)))
                                   for a, h in g.hands.items())),
                      tuple(sorted((p, tuple(v)) for p, v in g.in_flight.items())),
                      mig.cancel_requested, mig.downtime_raised, mig.iteration_count,
                      w.clock_ms - mig.time_last_bitmap_sync, mig.dirty_rate_high_cnt))
    parts.append((w.vm_running, w.throttle_pct, tuple(w.lock_owner.values())))
    for name, a in sorted(w.actors.items()):
        parts.append((name, a.label, a.blocked_on, a.joining, a.done, max(a.wake_at_ms - w.clock_ms, 0),
                      None if a.done else _frame_facts(a)))
    d = w.design
    parts.append(tuple((k, v) for k, v in sorted(vars(d).items()) if isinstance(v, (int, str, bool))))
    parts.append(tuple((rb.index, tuple(sorted((k, v) for k, v in vars(rb).items()
                                               if isinstance(v, (int, bool)) and not k.startswith("_"))))
                       for rb in w.blocks))
    return tuple(parts)


class _Dead(Exception):
    """A branch the search abandons (a step not enabled, a wrong violation, off the path)."""


class GuidedSearch:
    """Depth-first search for a schedule whose projection onto q follows the abstract path."""

    def __init__(self, design_cls, cfg: Config, q: int, path: list, states: list, want: str,
                 deadline: float, budget: int = NODE_BUDGET, eager: bool = False):
        self.design_cls, self.cfg, self.q, self.want = design_cls, cfg, q, want
        self.eager = eager
        self.path = path
        self.targets = [tuple(sorted(normalize(s).items())) for s in states]
        self.n = len(path)
        self.deadline, self.budget = deadline, budget
        self.moves = 0
        self.best = (-1, [])        # furthest path index reached, and the schedule reaching it
        self.seen: set = set()
        self.w: World | None = None
        self.wprefix: list = []
        self.invs = applicable(World(cfg, design_cls).design)
        others = [p for rb in World(cfg, design_cls).blocks for p in range(rb.offset, rb.offset + rb.pages)
                  if p != q]
        self.others = others
        # how far the actor of rule i can go on its own: runs of one actor's rules
        self.reach = []
        for i in range(self.n):
            j = i
            while j < self.n and path[j][0].actor == path[i][0].actor:
                j += 1
            self.reach.append(j)

    # -- the live world ----------------------------------------------------------------------
    def _goto(self, prefix: list) -> World:
        if self.w is None or self.wprefix != prefix[:len(self.wprefix)] or len(self.wprefix) > len(prefix):
            self.w, self.wprefix = World(self.cfg, self.design_cls), []
        for c in prefix[len(self.wprefix):]:
            self.w.step(c)
        self.wprefix = list(prefix)
        return self.w

    def _step(self, w: World, prefix: list, choice) -> object:
        """Apply one choice to the live world; returns the violation it causes (or None)."""
        self.moves += 1
        try:
            w.step(choice)
        except BadChoice:
            self.w = None
            raise _Dead() from None
        except ModelError as exc:
            prefix.append(list(choice))
            self.wprefix = list(prefix)
            from dirtyproof.spec import Violation
            return Violation(exc.invariant, str(exc), self.q if exc.invariant == self.want else None)
        prefix.append(list(choice))
        self.wprefix = list(prefix)
        return check_step(w, self.invs)

    def _proj(self, w: World) -> tuple:
        try:
            return tuple(sorted(project(w, self.q).items()))
        except ProjectionError:
            raise _Dead() from None

    # -- moves ---------------------------------------------------------------------------------
    def _apply(self, prefix: list, i: int, choice, progress: bool):
        """Take ``choice`` (a thread may then continue off the path for a few steps); yields
        ``(prefix, j, done)`` for every path index j the projection lands on."""
        w = self._goto(prefix)
        prefix = list(prefix)
        thread = choice[0] in THREADS
        lo = i
        hi = self.reach[i] if progress and thread else (i + 1 if progress else i)
        for _ in range(MAX_DETOUR if thread else 1):
            v = self._step(w, prefix, choice)
            if v is not None:
                if v.invariant == self.want and v.page in (self.q, None):
                    yield prefix, self.n, True
                raise _Dead()
            t = self._proj(w)
            js = [j for j in range(hi, lo - 1, -1) if self.targets[j] == t]
            if progress and not thread:
                js = [j for j in js if j == i + 1]
            if js:
                for j in js:
                    yield prefix, j, False
                return
            if not thread or not w.runnable(w.actors[choice[0]]):
                raise _Dead()
            # off the path: the thread continues (e.g. it sends another page first)

    def _moves(self, w: World, i: int):
        """The choices to try at path index i: the rule's own first, then stutters."""
        r = self.path[i][0]
        actor, name = r.actor, r.name
        own = []
        if actor in THREADS:
            a = w.actors.get(actor)
            if a is not None and w.runnable(a):
                own.append(([actor, None], True))
        elif actor == "vcpu" and name == "write_q" and w.vm_running:
            own.append((["vcpu0", self.q], True))
        elif actor == "device" and name == "write_q" and w.vm_running:
            own.append((["device", self.q], True))
        elif actor == "mgmt":
            own.append((["mgmt", name], True))
        stut = []
        wake = w.next_wakeup()
        jump = self.cfg.watcher_idle_ms + self.cfg.watcher_poll_ms
        clocks = [wake - w.clock_ms] if wake is not None else []
        if not clocks or clocks[0] < jump:
            # past the watcher's idle time in one go: first when the rule's own thread sleeps
            clocks.insert(0 if actor in THREADS and not own else len(clocks), jump)
        stut += [(["clock", ms], False) for ms in clocks]
        for t in THREADS:
            a = w.actors.get(t)
            if t != actor and a is not None and w.runnable(a):
                stut.append(([t, None], False))
        if w.vm_running:
            for p in self.others:
                stut.append((["device", p], False))
                stut.append((["vcpu0", p], False))
        if w.migration_active() and not w.mig.downtime_raised:
            stut.append((["mgmt", "switchover"], False))
        if self.eager and w.vm_running and w.mig is not None and w.coverage_owed():
            # keep the other pages dirty: a clean one is written before anything else, so syncs
            # find pages to add and the pending count stays above the switchover threshold
            marked = marked_pages(w)
            first = [(["device", p], False) for p in self.others if not marked[p]]
            if first:
                return first[:1] + own + stut
        return own + stut

    def search(self) -> list | None:
        """The schedule found, or ``None`` when the budget is spent."""
        w = self._goto([])
        if self._proj(w) != self.targets[0]:
            return None
        return self._dfs([], 0, 0)

    def _dfs(self, prefix: list, i: int, stutters: int):
        if self.moves > self.budget or time.perf_counter() > self.deadline:
            return None
        w = self._goto(prefix)
        key = (i, fingerprint(w))
        if key in self.seen:
            return None
        self.seen.add(key)
        if i > self.best[0]:
            self.best = (i, list(prefix))
        for choice, progress in self._moves(w, i):
            if not progress and stutters >= MAX_STUTTERS:
                continue
            try:
                for nprefix, j, done in self._apply(prefix, i, choice, progress):
                    if done:
                        return nprefix
                    if j == self.n:
                        continue          # bad abstract state reached but no violation: keep looking
                    res = self._dfs(nprefix, j, stutters + 1 if j == i else 0)
                    if res is not None:
                        return res
                    if self.moves > self.budget or time.perf_counter() > self.deadline:
                        return None
            except _Dead:
                continue
        return None


# ---------------------------------------------------------------------------------------------
# 5: replay, and the whole procedure
def _replay(design_spec, design_cls, cfg, choices, q, want, seed=None):
    """Replay ``choices`` with every invariant checked; the trace, or an error message."""
    w = World(cfg, design_cls)
    res = run(w, choices)
    v = res.violation
    if v is None or v.invariant != want or (v.page is not None and v.page != q) \
            or res.violation_step != len(choices) - 1:
        got = "no violation" if v is None else f"{v.invariant} on page {v.page} at step {res.violation_step}"
        return None, res, got
    trace = Trace(design_spec, cfg, [list(c) for c in res.choices], seed)
    trace.labels = [r.label for r in res.log]
    trace.violation = {"invariant": v.invariant, "step": res.violation_step, "page": v.page, "message": v.message}
    return trace, res, None


def concretize_guided(design_spec: str, design_cls, enc, kvm_mode: str, path: list, states: list,
                      seconds: float = SECONDS_BUDGET, budget: int = NODE_BUDGET):
    """The guided search over the candidate worlds; ``(trace, q, moves, notes)`` or ``None``."""
    check_path(enc, kvm_mode, path, states)
    want = expected_invariant(states[-1])
    gpath, gstates = group_steps(enc, path, states)
    deadline = time.perf_counter() + seconds
    notes, total = [], 0
    for cfg, qs in worlds_for(bool(states[0]["fast"]), kvm_mode):
        for q, eager in [(q, e) for q in qs for e in (True, False)]:
            s = GuidedSearch(design_cls, cfg, q, gpath, gstates, want, deadline, budget, eager)
            choices = s.search()
            total += s.moves
            if choices is None:
                notes.append(f"no schedule on a {cfg.geometry.blocks[0].pages}-page block with q={q}"
                             f"{' (eager writes)' if eager else ''}: "
                             f"{s.moves} moves, furthest abstract step {s.best[0]} of {len(gpath)} "
                             f"({gpath[s.best[0]][0].id if 0 <= s.best[0] < len(gpath) else '-'} next)")
                continue
            trace, _, got = _replay(design_spec, design_cls, cfg, choices, q, want)
            if trace is None:
                raise ConcretizationError(f"ENCODING BUG: the schedule that follows the abstract path "
                                          f"replays to {got}, not {want} on page {q}")
            return trace, q, total, notes
    return None, None, total, notes


def concretize_random(design_spec, design_cls, kvm_mode, states, seeds=400, steps=3000):
    """Last resort: seeded random schedules on the mixed geometry until one breaks the path's
    property on a page of q's kind (the path itself is not followed)."""
    first, last = states[0], states[-1]
    cfg = Config(geometry=small_geometry(), kvm_mode=kvm_mode)
    want = expected_invariant(last)
    for seed in range(seeds):
        w = World(cfg, design_cls)
        res = run(w, RandomScheduler(seed, steps), keep_log=False)
        v = res.violation
        if v is None or v.invariant != want or v.page is None or w.block_of(v.page).fast_path != first["fast"]:
            continue
        trace, _, got = _replay(design_spec, design_cls, cfg, res.choices, v.page, want, seed)
        if trace is None:
            raise ConcretizationError(f"schedule of seed {seed} did not replay to {want} on page {v.page}: {got}")
        return trace, v.page
    return None, None


def concretize(design_spec: str, design_cls, kvm_mode: str, states: list, out: Path | None = None,
               path: list | None = None, enc=None, fallback: bool = True, seconds: float = SECONDS_BUDGET) -> Concrete:
    """Turn the abstract path (``path``: [(rule, facts)], ``states``) into a replayed schedule."""
    t0 = time.perf_counter()
    want = expected_invariant(states[-1])
    trace, q, moves, notes, method = None, None, 0, [], "guided"
    if path is not None:
        if enc is None:
            from .registry import encoding_for
            enc = encoding_for(design_cls)
        trace, q, moves, notes = concretize_guided(design_spec, design_cls, enc, kvm_mode, path, states, seconds)
    if trace is None:
        if not fallback:
            raise ConcretizationError(f"ENCODING BUG: no schedule of the reference model follows the "
                                      f"abstract path to {want} ({'; '.join(notes)})")
        method = "random-fallback"
        trace, q = concretize_random(design_spec, design_cls, kvm_mode, states)
        if trace is None:
            raise ConcretizationError(f"ENCODING BUG: no schedule of the reference model breaks {want} "
                                      f"(guided: {'; '.join(notes) or 'no path given'}; random: 400 seeds)")
    w2, res2 = replay(trace, design_cls)
    v2 = res2.violation
    if v2 is None or v2.invariant != want or v2.page != q or res2.violation_step != len(trace.steps) - 1:
        raise ConcretizationError(f"ENCODING BUG: trace did not replay to {want} on page {q}")
    p = trace.save(out) if out is not None else None
    return Concrete(trace, p, q, want, [(c, r.label) for c, r in zip(trace.steps, res2.log)],
                    res2.violation_step, method, len(states) - 1, time.perf_counter() - t0, moves, notes)
