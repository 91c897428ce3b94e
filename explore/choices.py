"""The choices enabled in a world: every actor's possible next move, within the remaining budgets.

A choice is the ``[actor, arg]`` of :meth:`World.step`, so a path of choices is a trace.
"""
from __future__ import annotations

from dirtyproof.impl.world import NOVCPU

# Budget slots of a path (see Bounds.budgets).
GUEST, DEVICE, CLOCK, CANCEL, MOVES, PREEMPT, LAST, READY = range(8)

# Config fields holding a period some design compares the clock with; the base design's rate
# period (``time_last_bitmap_sync + 1000`` in ``migration_bitmap_sync``) is a QEMU constant.
PERIOD_FIELDS = ("dirty_sync_timer_ms", "watcher_poll_ms", "watcher_idle_ms", "iterate_sync_ms")
RATE_PERIOD_MS = 1000
# MigrationState fields holding a time the designs measure periods from.
TIME_FIELDS = ("time_last_bitmap_sync", "last_sync_end_ms")


def periods(cfg) -> tuple[int, ...]:
    """Every period of the config the designs compare times with, ascending."""
    return tuple(sorted({RATE_PERIOD_MS, *(getattr(cfg, f) for f in PERIOD_FIELDS)} - {0}))


def clock_targets(w, pers: tuple[int, ...], refs: tuple[str, ...] = TIME_FIELDS) -> list[int]:
    """Times the clock may move to: every sleeping thread's wake-up, and one millisecond past each
    reference time of ``refs`` plus each period of ``pers`` (past it, both ``>`` and ``>=``
    comparisons hold). The explorer passes the ones the run's code reads (explore/deadlines.py)."""
    now = w.clock_ms
    # a deadline on a virtual clock is reached at a realtime that depends on the VM's stops
    ts = {t for a in w.actors.values() if not a.done and (t := w.wake_time_ms(a)) is not None and t > now}
    mig = w.mig
    if mig is not None:
        for f in refs:
            ref = getattr(mig, f, None)
            if isinstance(ref, int):
                for p in pers:
                    if ref + p + 1 > now:
                        ts.add(ref + p + 1)
    return sorted(ts)


def terminal(w) -> bool:
    """Whether the run is over: the migration completed and its thread has exited."""
    return w.mig is not None and w.mig.phase == "completed" and not w.migration_active()


def enabled(w, budgets, pers, pages, refs: tuple[str, ...] = TIME_FIELDS) -> tuple[list, list]:
    """``(threads, env)``: the thread steps, and the environment moves with the budget slot each
    spends (``None`` for none); clock moves target :func:`clock_targets` of ``pers`` and
    ``refs``. A missing or cancelled migration is (re)started first, alone."""
    mig = w.mig
    if mig is None or (not w.migration_active() and mig.phase == "cancelled"):
        return [], [(["mgmt", "start"], None)]
    if terminal(w):
        return [], []
    threads = [[n, None] for n in allowed(budgets, w.runnable_threads())]
    env = []
    if not budgets[MOVES]:
        budgets = (0, 0, 0, 0, 0) + tuple(budgets[PREEMPT:])
    if w.migration_active() and not mig.downtime_raised and mig.phase in ("setup", "active"):
        env.append((["mgmt", "switchover"], None))
    if budgets[CANCEL] and w.can_cancel():
        env.append((["mgmt", "cancel"], CANCEL))
    if not threads:
        wake = w.next_wakeup()
        if wake is not None:          # every thread sleeps: time passes, at no cost
            env.append((["clock", wake - w.clock_ms], None))
    if budgets[CLOCK]:
        free = env[-1][0][1] + w.clock_ms if env and env[-1][1] is None and env[-1][0][0] == "clock" else None
        for t in clock_targets(w, pers, refs):
            if t != free:
                env.append((["clock", t - w.clock_ms], CLOCK))
    if w.vm_running:
        if budgets[GUEST]:
            env.extend((["vcpu0", p], GUEST) for p in pages)
        if budgets[DEVICE]:
            env.extend((["device", p], DEVICE) for p in pages)
            if w.kvm.with_bitmap:
                # a write KVM makes without a vCPU (dirty ring with the backup bitmap) is a device move
                env.extend(([NOVCPU, p], DEVICE) for p in pages)
        if budgets[GUEST] and w.balloon is not None:
            # a hinting guest's free-page report is a guest move too (Config.free_page_hinting)
            env.extend((["guest-hint", p], GUEST) for p in pages)
    return threads, env


def _fresh(ready, runnable) -> frozenset:
    """The threads of ``runnable`` that have not stepped since they were made runnable, from the
    ``(fresh, runnable)`` pair recorded at the last thread step: those fresh then, and those not
    runnable then (started, woken by a clock move or unblocked since)."""
    fresh, before = ready
    now = frozenset(runnable)
    return (frozenset(fresh) | (now - frozenset(before))) & now


def canonical_ready(budgets, runnable) -> tuple:
    """``budgets`` with its wake-up record in a canonical form for a state whose runnable threads
    are ``runnable``: ``(fresh, runnable)`` with ``fresh`` the threads :func:`_fresh` finds now.
    A node's record is read only through ``_fresh(record, runnable)`` with that node's runnable
    set (:func:`allowed`, :func:`after_thread`), which gives the same for both forms; so two paths
    that differ only in when a clock move woke a thread (before or after a step of another that
    does not read the clock) reach one state, not two (docs/explore.md, "Wake-up preemption")."""
    ready = budgets[READY]
    if ready is None:
        return budgets
    now = tuple(sorted(runnable))
    canon = (tuple(sorted(_fresh(ready, now))), now)
    return budgets if canon == ready else tuple(budgets[:READY]) + (canon,) + tuple(budgets[READY + 1:])


def canonical_budgets(budgets, runnable) -> tuple:
    """``budgets`` as stored for a state whose runnable threads are ``runnable``; every reader of
    a node's budgets (:func:`enabled`, :func:`allowed`, :func:`after_thread`, :func:`preempted`)
    reads this form. Two parts are a canonical form (the same futures either way, so two paths
    that differ only there reach one state), one is what the preemption bound means:

    - each kind's budget capped at the moves left (a path spends one of both per move, so a kind
      cannot spend more than that; :func:`enabled` offers no paid move once none is left);
    - with wake-up preemption, the last thread dropped (``None``) while every other runnable
      thread has not stepped since it was made runnable: it decides only whether a switch to a
      thread that has stepped since spends a preemption or is forbidden; there is none now, and
      a thread made runnable before the next thread step (by an environment move) has not
      stepped either (tests/test_explore_gate.py checks both parts exhaustively over three
      threads);
    - the last thread forgotten once it cannot go on (asleep, blocked or exited): it gave up its
      CPU, so whichever thread runs next does not preempt it, even if a clock move wakes it
      first. A preemption is a switch away from a thread that has been runnable since its last
      step (docs/explore.md, "The preemption bound"). Until s13 such a thread, woken, counted as
      preempted by the next switch, which kept interleavings out of a bound of 0 and split one
      state in two by which thread had slept last.
    """
    b = canonical_ready(budgets, runnable)
    moves = b[MOVES]
    kinds = tuple([min(k, moves) for k in b[:MOVES]])
    last = b[LAST]
    if last is not None and (last not in runnable or (
            b[READY] is not None and all(n == last or n in b[READY][0] for n in runnable))):
        last = None
    out = kinds + (moves, b[PREEMPT], last, b[READY])
    return b if out == b else out


def dominates(a, b) -> bool:
    """Whether a node with canonical budgets ``a`` can do all that a node of the same world with
    canonical budgets ``b`` can (budget subsumption, docs/explore.md "Reductions"): every move
    ``b`` can pay for, ``a`` can; every thread step :func:`allowed` from ``b`` is allowed from
    ``a``; and after that step or move the budgets from ``a`` dominate (or equal) those from ``b``
    again. So every path from the ``b`` node is a path from the ``a`` node through the same
    worlds, and the ``b`` node need not be explored when the ``a`` node is, at no greater cost.

    ``a`` has at least each kind of move left that ``b`` has, and a preemption state no worse:
    more preemptions left (one more pays for the one switch whose cost the last thread decides:
    the first), or as many and no last thread or the same one; with wake-up preemption, ``a``'s
    fresh threads include ``b``'s (a fresh thread takes over for free). With unbounded
    preemptions no preemption state is kept. tests/test_explore_subsumption.py checks the
    simulation for every canonical vector over three threads."""
    if a == b or any(x < y for x, y in zip(a[:PREEMPT], b[:PREEMPT])):
        return False
    pa, pb = a[PREEMPT], b[PREEMPT]
    if (pa < 0) != (pb < 0):
        return False
    if pa < 0:
        return True
    ra, rb = a[READY], b[READY]
    if ra is not None:
        if rb is None or ra[1] != rb[1] or not set(ra[0]).issuperset(rb[0]):
            return False
    elif rb is not None:
        return False
    return pa > pb or (pa == pb and (a[LAST] is None or a[LAST] == b[LAST]))


def allowed(budgets, runnable) -> list:
    """The threads of ``runnable`` the preemption bound lets step: all of them while preemptions
    are left (or unbounded) or the last thread cannot go on; else the last thread, and, with
    wake-up preemption on (``budgets[READY]`` not ``None``), every thread that has not stepped
    since it was made runnable."""
    last = budgets[LAST]
    if budgets[PREEMPT] != 0 or last not in runnable or len(runnable) < 2:
        return list(runnable)
    ready = budgets[READY]
    if ready is None:
        return [last]
    fresh = _fresh(ready, runnable)
    return [n for n in runnable if n == last or n in fresh]


def preempted(budgets, runnable) -> bool:
    """Whether the preemption bound forbids some thread of ``runnable`` to step."""
    return len(allowed(budgets, runnable)) < len(runnable)


def after_thread(budgets, runnable, name: str) -> tuple:
    """The budgets after thread ``name`` steps, ``runnable`` being the threads that could: a switch
    away from the last thread while it could go on spends a preemption (bounded ones only). The
    budgets are canonical (:func:`canonical_budgets`), so a last thread that has slept, blocked or
    exited since its step is ``None`` here."""
    if budgets[PREEMPT] < 0:
        return budgets
    last, ready = budgets[LAST], budgets[READY]
    cost = 1 if last is not None and last != name and last in runnable else 0
    if ready is not None:
        # wake-up preemption: a thread that has not stepped since it was made runnable takes
        # over for free, at once or later, as a woken thread starts on another CPU
        fresh = _fresh(ready, runnable)
        if name in fresh:
            cost = 0
        ready = (tuple(sorted(fresh - {name})), tuple(sorted(runnable)))
    return tuple(budgets[:PREEMPT]) + (budgets[PREEMPT] - cost, name, ready)


__all__ = ["after_thread", "allowed", "dominates", "canonical_budgets", "canonical_ready", "preempted", "enabled", "clock_targets", "periods", "terminal", "GUEST", "DEVICE", "CLOCK", "CANCEL", "MOVES", "PREEMPT", "LAST", "READY"]
