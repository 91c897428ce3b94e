"""Non-convergence: a loop that repeats modulo statistics, reported as a ``progress`` lasso.

A migration that can never converge once the guest has stopped writing (clear-previous-chunk: a
page whose L1 bit is never cleared is fetched again by every sync) closes no cycle of states,
because QEMU's accounting counters grow on every turn of it; the search is cut by ``max_depth``
and the livelock check, which needs a cycle, sees nothing. This module looks, on the paths a cut
search left at ``max_depth``, for two states of one path that are equal modulo the *statistics*
the model declares (``STATISTICS`` of ``MigrationState`` and ``Ghost``; ``explore/fingerprint.py``
leaves them out of the fingerprint modulo statistics). Such a pair is a candidate turn. Equal
modulo statistics includes the remaining budgets and the clock, so the turn spends no
environment move and no preemption and lets no time pass: it consists of thread steps only.

A candidate is reported only after three concrete checks (:func:`pump`), none of which trusts
the abstraction:

1. **pumped**: the turn is replayed :data:`PUMP_TURNS` more times from its first state; each turn
   must be enabled step by step, pass every check, never complete the migration, return to the
   same state modulo statistics, and leave every statistic no smaller (they are declared to only
   grow: a decrease is a wrong declaration and no report);
2. **shifted**: from the first state with every statistic raised by :data:`SHIFT` (all by the
   same amount, so equalities between statistics, as the period counter and its ghost mirror,
   hold), the turn must run the same way back to the same state modulo statistics: what the
   turn does does not depend on the counts' values, whether small or large (a design that
   completes at the fifth sync, or once a count passes any threshold below ``SHIFT``, fails);
3. **time passes**: the turn lets no time pass, and a sleeping thread or a period could help;
   from the first state, :data:`TIME_ROUNDS` rounds each move the clock past every period of
   the config and then let every runnable thread step in turn (round-robin, the free clock move
   when all sleep) for as many steps as the turn has; the migration must not complete.

A violation met during these replays is not reported as such (it would not be the cheapest),
only as "no report": the candidate is dropped. What the report claims is the weaker, stated
thing: no convergence within these checks.
"""
from __future__ import annotations

from dataclasses import dataclass

from dirtyproof.impl.scheduler import DesignCrash
from dirtyproof.spec import Violation

from .choices import after_thread, periods, terminal
from .fingerprint import abstract, statistics_of

PUMP_TURNS = 20
SHIFT = 1 << 30
TIME_ROUNDS = 20
# at most this many paths cut at max_depth are searched for a repeat, and this many candidate
# turns pumped: the check runs only on cut searches, and must not cost more than the search
MAX_PATHS = 2000
MAX_CANDIDATES = 8


@dataclass
class Pumped:
    """The evidence of a non-convergence lasso: where the turn starts (steps of the path before
    it), the turn's choices, and the statistics it grows (``name: growth per turn``)."""

    prefix: int
    turn: list
    grows: dict
    turns: int = PUMP_TURNS

    def message(self) -> str:
        """The violation's text."""
        names = ", ".join(f"{k} +{v}" for k, v in self.grows.items()) or "none"
        return (f"no convergence: the loop of the last {len(self.turn)} steps repeats modulo statistics "
                f"[{names} per turn], pumped {self.turns} turns, also with every statistic raised by {SHIFT} "
                f"and with the clock passing every period {TIME_ROUNDS} times; it never completes the migration "
                f"although the guest writes no more")


def find_nonconvergence(ex) -> tuple[Violation, list] | None:
    """The cheapest non-convergence lasso on the paths explorer ``ex`` cut at ``max_depth``:
    ``(violation, path = prefix + one turn)``, or ``None``. ``ex.res.pump`` gets its evidence."""
    cut = sorted((i for i in ex.finished if ex.depth[i] >= ex.bounds.max_depth),
                 key=lambda k: (ex._cost(k), k))[:MAX_PATHS]
    candidates = []
    for i in cut:
        chain = _chain(ex, i)
        first: dict[int, int] = {}
        for q, node in enumerate(chain):
            p = first.setdefault(ex.afp[node], q)
            if p != q:
                candidates.append((ex.spent[chain[p]], q, chain[p], chain[q], chain[p:q + 1]))
                break
    tried = set()
    for _, _, start, _, nodes in sorted(candidates, key=lambda c: c[:2]):
        if ex.afp[start] in tried:
            continue
        tried.add(ex.afp[start])
        if len(tried) > MAX_CANDIDATES:
            return None
        prefix = ex.path(start)
        turn = [list(ex.choice[b]) for b in nodes[1:]]     # the chain follows the parents
        got = pump(ex, prefix, turn, ex.budgets[start])
        if got is not None:
            ex.res.pump = got
            return Violation("progress", got.message()), prefix + turn
    return None


def _chain(ex, i: int) -> list[int]:
    """The nodes from the initial one to node ``i`` along the parents."""
    out = []
    while i >= 0:
        out.append(i)
        i = ex.parent[i]
    return out[::-1]


def _counts(w) -> dict:
    """Every declared statistic of ``w``: ``{"Class.field": value}`` (the first object of a class
    by its name alone, a later one numbered)."""
    out = {}
    for o, names in statistics_of(w):
        cls = _model_name(o)
        for n in names:
            key = f"{cls}.{n}"
            k = 2
            while key in out:
                key, k = f"{cls}#{k}.{n}", k + 1
            out[key] = getattr(o, n)
    return out


def _model_name(o) -> str:
    """The model class an object is an instance of (the footprint-recording subclasses of the
    explorer named as what they record)."""
    for c in type(o).__mro__:
        if "STATISTICS" in c.__dict__:
            return c.__qualname__
    return type(o).__qualname__


def _try(ex, w, ch) -> Violation | None:
    """One checked step of a replay here; a design that crashes on it (a shifted count out of its
    range, say) counts as a violation: the candidate is dropped, never reported on a crash."""
    try:
        return ex._step(w, ch)
    except DesignCrash as exc:
        return Violation("crash", str(exc))
    finally:
        ex._broken = []


def _turn(ex, w, turn, budgets, goal) -> tuple | None:
    """Take ``turn`` on ``w``, checking each step; the budgets after, if every step was enabled,
    passed every check, did not complete, and the state is ``goal`` modulo statistics at the end."""
    for ch in turn:
        runnable = w.runnable_threads()
        if ch[0] not in runnable:
            return None
        budgets = after_thread(budgets, runnable, ch[0])
        v = _try(ex, w, ch)
        if v is not None or terminal(w) or (w.mig is not None and w.mig.phase == "completed"):
            return None
    if abstract(w, budgets) != goal:
        return None
    return budgets


def pump(ex, prefix, turn, budgets) -> Pumped | None:
    """The three checks of the module docstring on the turn ``turn`` after ``prefix``; the
    evidence if all of them pass, else ``None``."""
    if not turn or any(ch[0] in ("mgmt", "clock") for ch in turn):
        return None
    w = ex.replay(prefix)
    goal = abstract(w, budgets)
    grows = None
    b = budgets
    for _ in range(PUMP_TURNS):
        start = _counts(w)
        b = _turn(ex, w, turn, b, goal)
        if b is None:
            return None
        end = _counts(w)
        if any(end[k] < start[k] for k in start):
            return None                              # a "statistic" that shrank: not one
        step = {k: end[k] - start[k] for k in start if end[k] != start[k]}
        if grows is not None and step != grows:
            return None                              # not the same turn each time
        grows = step
    # shifted: the same turn, every statistic far from any small threshold
    w = ex.replay(prefix)
    for o, names in statistics_of(w):
        for n in names:
            setattr(o, n, getattr(o, n) + SHIFT)
    shifted = abstract(w, budgets)
    if shifted != goal or _turn(ex, w, turn, budgets, goal) is None:
        return None
    # time passes: every period elapses, each thread runs in turn
    if not _time_passes(ex, ex.replay(prefix), len(turn)):
        return None
    return Pumped(len(prefix), list(turn), grows or {}, PUMP_TURNS)


def _time_passes(ex, w, length: int) -> bool:
    """Whether the migration still has not completed after :data:`TIME_ROUNDS` rounds of: the
    clock past every period of the config, then ``length`` steps of the runnable threads in turn
    (the clock moved to the next wake-up when every thread sleeps). ``False`` also when a step
    fails a check (the candidate is dropped, not reported)."""
    leap = max(periods(ex.given_config)) + 1      # every period of the config, read or not
    k = 0
    for _ in range(TIME_ROUNDS):
        if _try(ex, w, ["clock", leap]) is not None:
            return False
        for _ in range(length):
            runnable = w.runnable_threads()
            if runnable:
                ch = [runnable[k % len(runnable)], None]
                k += 1
            else:
                wake = w.next_wakeup()
                if wake is None:
                    break
                ch = ["clock", wake - w.clock_ms]
            if _try(ex, w, ch) is not None:
                return False
            if terminal(w) or (w.mig is not None and w.mig.phase == "completed"):
                return False
    return True


__all__ = ["Pumped", "find_nonconvergence", "pump", "PUMP_TURNS", "SHIFT", "TIME_ROUNDS"]
