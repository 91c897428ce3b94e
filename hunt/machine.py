"""The Hypothesis state machine that hunts a design for lost pages.

One machine class per design (:func:`machine_for`). Hypothesis draws a small world (geometry,
KVM mode, switchover point) and then interleaves vCPU writes, device writes, steps of every
thread actor, clock advances, cancel-and-restart and switchover. Every applicable invariant of
``dirtyproof.spec`` is checked after every atomic step; the teardown raises the downtime limit and
drives the migration to completion with a fixed policy, so the end-to-end no-loss check runs in
every example. A violation raises :class:`HuntViolation`, whose final (shrunk) instance carries a
readable step list and the path of a trace that ``dirtyproof replay`` reproduces.
"""
from __future__ import annotations

import time

from hypothesis import strategies as st
from hypothesis import target
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dirtyproof.impl import World
from dirtyproof.impl.scheduler import DesignCrash
from dirtyproof.impl.steps import FETCHES
from dirtyproof.impl.world import BadChoice, ModelError
from dirtyproof.spec import Checker, Violation

from .report import HuntViolation, design_spec_of, is_final_run, note_rule
from .strategies import clock_steps, configs, page_selectors, thread_bursts, thread_events
from .swarm import hot_pages

# Steps the teardown (or a cancel) may take to finish a migration before it counts as no progress.
# Measured: the shipped designs' longest teardown over 60 examples each is 404 steps (cancels: 43).
DRIVE_LIMIT = 10000
# Examples Hypothesis may still spend shrinking once an example ran into DRIVE_LIMIT: each such
# example costs the whole limit in steps, and a livelock (a send that never ends) fails them all
# alike, so shrinking it further only delays the verdict (it took minutes with the full budget).
PROGRESS_SHRINK_BUDGET = 2
MAX_ATTEMPTS = 2
UNTIL_LIMIT = 400


def _event_seen(w, event: str) -> bool:
    """Whether the step just taken did ``event`` (see ``strategies.THREAD_EVENTS``), from its
    record and the world's events."""
    if event == "fetch":
        return w.last_step is not None and w.last_step.kind in FETCHES
    return any(ev[0] == event for ev in w.events)


class ShrinkBudgetSpent(BaseException):
    """Raised to stop Hypothesis once a hunt's shrink budget is spent; the hunt then reports the
    shortest counterexample seen (not an ``Exception``, so Hypothesis does not treat it as a failure)."""


class DesignCrashed(BaseException):
    """Ends a hunt at a design's own crash (``hunt`` raises the :class:`DesignCrash` itself).

    A design's crash is bad input, not a counterexample to shrink: Hypothesis shrank it, re-running
    the crash hundreds of times (20 s for a hunt of 3 examples) before the one-line report. Once a
    crash is recorded in the machine's stats every later example raises this at once, before it
    runs a step, so Hypothesis's shrinker finishes in a few trivial examples."""

    def __init__(self, crash: DesignCrash):
        super().__init__(str(crash))
        self.crash = crash


def _has_world(m) -> bool:
    return m.w is not None


class DesignMachine(RuleBasedStateMachine):
    """Hypothesis rules over one design's world; subclass via :func:`machine_for`."""

    design_cls: type | None = None
    design_spec: str = ""
    config_overrides: dict = {}
    trace_dir: str | None = None
    stats: dict = {}

    def __init__(self) -> None:
        super().__init__()
        self.w: World | None = None
        self.choices: list = []
        self.labels: list[str] = []
        self.failed = False
        self.best_spread = 0.0
        self.best_syncs = 0.0
        self.last_read: int | None = None
        st_ = self.stats
        st_["examples"] = st_.get("examples", 0) + 1
        if "crash" in st_:
            raise DesignCrashed(st_["crash"])
        budget = st_.get("shrink_budget")
        if budget is not None and "first_failure_examples" in st_ \
                and st_["examples"] - st_["first_failure_examples"] > budget:
            st_["budget_spent"] = True
            raise ShrinkBudgetSpent()
        cb = st_.get("progress")
        if cb is not None:
            cb(st_)

    # ------------------------------------------------------------------------------------------
    # applying choices
    def _apply(self, choice) -> str:
        """Apply one choice, record it, check every applicable invariant; raise on a violation."""
        w = self.w
        idx = len(self.choices)
        self.choices.append(list(choice))
        try:
            label = w.step(choice)
        except ModelError as exc:
            self.labels.append(f"!! {exc}")
            self._fail(Violation(exc.invariant, str(exc)), idx)
        except BadChoice:
            raise
        except Exception as exc:  # the design's own code broke
            crash = DesignCrash(f"design {self.design_spec!r} crashed at step {idx} {list(choice)}: "
                                f"{type(exc).__name__}: {exc}")
            crash.__cause__ = exc
            self.stats.setdefault("crash", crash)       # every later example stops at once
            raise DesignCrashed(crash) from exc
        self.labels.append(label)
        for ev in w.events:
            if ev[0] == "read":
                self.last_read = ev[1]
        self.stats["steps"] = self.stats.get("steps", 0) + 1
        seen = len(self.checker.rule_violations)
        v = self.checker.after_step(w, idx)
        for rv in self.checker.rule_violations[seen:]:
            note_rule(self.stats, self.design_cls, self.design_spec, self.cfg, self.choices, rv)
        if v is not None:
            self._fail(v, idx)
        cycle = w.deadlock()
        if cycle:
            self._fail(Violation("progress", f"deadlock: {cycle}"), idx)
        return label

    def _fail(self, violation: Violation, step: int) -> None:
        """Stop the example: raise a :class:`HuntViolation` (with report and trace on the final run)."""
        self.failed = True
        st_ = self.stats
        if "first_failure_examples" not in st_:
            st_["first_failure_examples"] = st_.get("examples", 0)
            st_["first_failure_seconds"] = time.perf_counter() - st_.get("t0", time.perf_counter())
        exc = HuntViolation(self.design_cls, self.design_spec, self.cfg, self.choices[:step + 1],
                            self.labels[:step + 1], violation, step)
        best = st_.get("best")
        if best is None or exc.length < best.length:
            st_["best"] = exc
        if is_final_run():
            exc.finalise(self.trace_dir)
            st_["final"] = exc
        raise exc

    def _drive(self, done, limit: int = DRIVE_LIMIT, why: str = "") -> None:
        """Fixed policy until ``done()``: the migration thread first, then other threads, else the
        clock jumps to the next wake-up. Violates ``progress`` if nothing can run or it takes too long."""
        w = self.w
        n = 0
        while not done():
            if n >= limit:
                budget = self.stats.get("shrink_budget")
                self.stats["shrink_budget"] = PROGRESS_SHRINK_BUDGET if budget is None else min(
                    budget, PROGRESS_SHRINK_BUDGET)
                self._fail(Violation("progress", f"{why} not finished after {limit} steps"), len(self.choices) - 1)
            threads = w.runnable_threads()
            if threads:
                self._apply(["migration" if "migration" in threads else threads[0], None])
            else:
                wake = w.next_wakeup()
                if wake is None:
                    self._fail(Violation("progress", f"{why}: no thread can run and none sleeps"),
                               len(self.choices) - 1)
                self._apply(["clock", wake - w.clock_ms])
            n += 1

    def _page(self, sel: int) -> int:
        """The guest page a selector names: 0 the page the sender read last, ``sel < 8`` one of
        the hot pages, else any page."""
        if sel == 0 and self.last_read is not None:
            return self.last_read
        if sel < len(self.hot):
            return self.hot[sel]
        return self.guest[sel % len(self.guest)]

    # ------------------------------------------------------------------------------------------
    # rules
    @initialize(cfg=configs())
    def start(self, cfg) -> None:
        """Build the world Hypothesis drew (with the hunt's config overrides) and start the migration."""
        if self.config_overrides:
            import dataclasses
            cfg = dataclasses.replace(cfg, **self.config_overrides)
        self.cfg = cfg
        self.w = World(cfg, self.design_cls)
        self.checker = Checker(self.w.design)
        self.hot = hot_pages(cfg.geometry)
        self.guest = self.w.guest_pages
        self._apply(["mgmt", "start"])

    @precondition(lambda self: _has_world(self) and self.w.vm_running)
    @rule(sel=page_selectors)
    def vcpu_write(self, sel: int) -> None:
        """A guest store to a page."""
        self._apply(["vcpu0", self._page(sel)])

    @precondition(lambda self: _has_world(self) and self.w.vm_running)
    @rule(sel=page_selectors)
    def device_write(self, sel: int) -> None:
        """A device (DMA) write to a page: straight into L2."""
        self._apply(["device", self._page(sel)])

    @precondition(lambda self: _has_world(self) and bool(self.w.runnable_threads()))
    @rule(which=st.integers(0, 3), n=thread_bursts)
    def thread_steps(self, which: int, n: int) -> None:
        """``n`` atomic steps of one runnable thread (migration, timer, watcher...), fewer if it blocks."""
        w = self.w
        threads = w.runnable_threads()
        name = threads[which % len(threads)]
        for _ in range(n):
            a = w.actors.get(name)
            if a is None or not w.runnable(a):
                break
            self._apply([name, None])

    @precondition(lambda self: _has_world(self) and bool(self.w.runnable_threads()))
    @rule(which=st.integers(0, 3), event=thread_events)
    def thread_until(self, which: int, event: str) -> None:
        """Run one runnable thread until its next page read, CLEAR, L2 fetch or sync end (or it blocks)."""
        w = self.w
        threads = w.runnable_threads()
        name = threads[which % len(threads)]
        for _ in range(UNTIL_LIMIT):
            a = w.actors.get(name)
            if a is None or not w.runnable(a):
                break
            self._apply([name, None])
            if _event_seen(w, event):
                break

    @precondition(lambda self: _has_world(self) and self.w.migration_active())
    @rule(n=st.integers(4, 48))
    def run_system(self, n: int) -> None:
        """Let every thread run round-robin for ``n`` steps, the clock jumping to the next
        wake-up every eighth step (timers and the watcher fire as they would)."""
        w = self.w
        turn = 0
        for i in range(n):
            threads = w.runnable_threads()
            wake = w.next_wakeup()
            if wake is not None and (not threads or i % 8 == 7):
                self._apply(["clock", wake - w.clock_ms])
            elif threads:
                self._apply([threads[turn % len(threads)], None])
                turn += 1
            else:
                break

    @precondition(_has_world)
    @rule(ms=clock_steps)
    def clock(self, ms: int) -> None:
        """The clock moves on (0: to the next thread wake-up)."""
        if ms == 0:
            wake = self.w.next_wakeup()
            ms = wake - self.w.clock_ms if wake is not None else 1000
        self._apply(["clock", ms])

    @precondition(lambda self: _has_world(self) and self.w.can_cancel() and self.w.attempts < MAX_ATTEMPTS)
    @rule(odds=st.integers(0, 3))
    def cancel_and_restart(self, odds: int) -> None:
        """``migrate_cancel``, run until the attempt is torn down, then ``migrate`` again (only
        when ``odds`` is 0: cancels are rare, or few examples would get far)."""
        if odds:
            return
        self._apply(["mgmt", "cancel"])
        self._drive(lambda: not self.w.migration_active(), why="cancel")
        self._apply(["mgmt", "start"])

    @precondition(lambda self: _has_world(self) and self.w.migration_active()
                  and not self.w.mig.downtime_raised)
    @rule(odds=st.integers(0, 3))
    def switchover(self, odds: int) -> None:
        """Raise the downtime limit (only when ``odds`` is 0): the migration completes soon after."""
        if odds:
            return
        self._apply(["mgmt", "switchover"])

    @invariant()
    def spec_invariants(self) -> None:
        """Steer the search (invariants themselves are checked after every atomic step in ``_apply``)."""
        w = self.w
        if w is None or self.failed:
            return
        if w.coverage_owed():
            # steer toward states with stale pages marked in several layers at once
            layers = sum(bool(bm.any()) for bm in (w.kvm.L1, w.L2)) + sum(
                bool(bm.any()) for rb in w.blocks for bm in rb.extra_bitmaps.values())
            stale = int((w.src_version != w.last_read).sum())
            self.best_spread = max(self.best_spread, float(layers * min(stale, 16)))
            self.best_syncs = max(self.best_syncs, float(w.mig.dirty_sync_count if w.vm_running else 0))

    def teardown(self) -> None:
        """Raise the downtime limit and finish the migration; no-loss is checked on the way."""
        w = self.w
        if w is None or self.failed:
            return
        target(self.best_spread, label="stale pages x marked layers")
        target(self.best_syncs, label="syncs with the VM running")
        if w.migration_active() and not w.mig.downtime_raised:
            self._apply(["mgmt", "switchover"])
        self._drive(lambda: not w.migration_active(), why="completion")
        if not w.migration_done():
            self._fail(Violation("progress", "the migration ended without completing"), len(self.choices) - 1)


class HintingMachine(DesignMachine):
    """The machine for worlds whose guest hints free pages: one more rule, the guest's report."""

    @precondition(lambda self: _has_world(self) and self.w.vm_running)
    @rule(sel=page_selectors)
    def guest_hint(self, sel: int) -> None:
        """The guest's balloon driver reports a page free (it may write it again later)."""
        self._apply(["guest-hint", self._page(sel)])


def machine_for(design_cls, trace_dir: str | None = None, settings=None,
                profile: str | None = None, config_overrides: dict | None = None) -> type[DesignMachine]:
    """A machine class hunting ``design_cls``; ``Machine.TestCase`` is a unittest/pytest test.

    ``settings`` (a Hypothesis ``settings``) or ``profile`` (``ci``, ``dev``, ``thorough``; default
    ``$DIRTYPROOF_PROFILE`` or ``ci``) configures ``TestCase``. ``config_overrides`` (``Config``
    fields) apply to every drawn world; with ``free_page_hinting`` the machine also draws the
    guest's free-page reports (:class:`HintingMachine`)."""
    from dirtyproof.impl.designs import check_interface

    from .profiles import get_settings

    check_interface(design_cls)
    spec = design_spec_of(design_cls)
    name = "Hunt_" + "".join(ch if ch.isalnum() else "_" for ch in design_cls.name)
    overrides = dict(config_overrides or {})
    base = HintingMachine if overrides.get("free_page_hinting") else DesignMachine
    cls = type(name, (base,), {"design_cls": design_cls, "design_spec": spec,
                               "trace_dir": trace_dir, "stats": {}, "config_overrides": overrides})
    cls.TestCase.settings = settings if settings is not None else get_settings(profile)
    return cls
