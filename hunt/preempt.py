"""The sweep's preemption arm: the plain random run on a named world, with a second syncing
thread preempted inside its critical sections and writes aimed at the page just read.

Why an arm of its own (measured on the dev set, benchmarks/README.md "The preemption arm"):
races between a second syncing actor (the periodic timer, the v1 watcher, any thread a design
adds) and the sender need three things at once, and neither existing arm gives them often:

1. **The second actor must sync at all, with the sender busy.** QEMU's timer syncs only when
   ``dirty_sync_count`` has not moved for a whole period, i.e. inside an iteration longer than
   5 s; the sender must be mid-iteration. On the named worlds (64-128 pages) every plain run
   has that (100 % of plain runs reach the timer's log sync with the migration thread stepping
   inside it), but only after the first full iteration, about step 1000-1700; the swarm's small
   drawn worlds iterate in a few dozen steps, so the count keeps moving, and half of them
   switch auto-converge (the timer) off: 14 % of swarm schedules reach the timer's log sync,
   6.5 % with the sender stepping inside it (400 seeds).
2. **The second actor must stop inside its sync** (after a GET, after it released one lock and
   before the next step that depends on it) **while the sender runs several steps.** The plain
   scheduler gives a window of a step or two (each thread step is a fresh weighted draw).
3. **A write must land on a page the sender has just read**, before the racing step: the shape
   of every lost write. The plain scheduler writes half of the time to four random hot pages.

What the arm does, each from a literature idea, not from any one design:

- It keeps the plain run (:class:`RandomScheduler`'s weights, hot pages and cancel rate) on the
  named worlds of the plain arm, in every KVM mode, with :data:`PREEMPT_STEPS` free steps:
  long iterations and several timer syncs per run (point 1).
- **Preemption inside a helper's critical sections** (point 2). PCT (Burckhardt et al., "A
  Randomized Scheduler with Probabilistic Guarantees of Finding Bugs", ASPLOS 2010) finds a bug
  of depth d with probability at least 1/(n k^(d-1)) by lowering the running thread's priority
  at d-1 random steps among k. Here k is dominated by the sender's steps (thousands per run),
  so uniform change points almost never land in the tens of steps a timer sync takes (a PCT
  prototype with change points over all steps found neither dev-set race in 90 runs). As CHESS
  does (Musuvathi and Qadeer, "Iterative Context Bounding for Systematic Testing of
  Multithreaded Programs", PLDI 2007: preemptions only where they can matter), change points
  are placed where a race can happen: at a step of a thread other than the migration thread
  taken while it holds a lock (inside the BQL-held tick, between two locked sections of a sync),
  with probability :attr:`PreemptScheduler.rate`; the thread then stays off the CPU for
  :attr:`PreemptScheduler.hold` schedule steps (a bounded priority drop, so the run still
  completes and every sync of the run gets its chance), whatever it holds, while the sender and
  the guest go on. Preempting the migration thread as well was measured and is worse (its
  critical sections are most of the run; parking it stalls the iteration the race needs: 0-2
  hits in 60 runs where the helper-only arm has 5-11).

Measured on the two timer races of tests/user_designs (90 runs each, seed-0 sweep): the arm
breaks coverage in 9 and 16 runs (plain arm: 1.5 % and 0 %, plain ``dirtyproof run`` seeds:
3.7 % and 0.7 %, swarm: 0.05 % and 0 %); no false alarm on the shipped designs, the safe mutants
and the ten correct user designs (33 runs each).
- **Writes aimed at the page the sender read last** (point 3), :data:`AIM` of the guest's
  writes, as the Hypothesis machine's page selector 0 does (:mod:`.strategies`).

The arm's draws depend on its seed alone (a generator of its own beside the plain scheduler's),
so a schedule is replayable; the counterexample's trace records the world and the choices,
which is all ``dirtyproof replay`` needs, and delta debugging shrinks it as any other.
"""
from __future__ import annotations

import random

from dirtyproof.impl import Config
from dirtyproof.impl.scheduler import RandomScheduler

# Free steps of a preemption-arm run: the timer syncs only from the second iteration on (about
# step 1000-1700 on the named worlds), so a run longer than the plain arm's 2000 holds more timer
# syncs per second spent. Measured on the dev set's two timer races (90 runs each): 3000 steps
# 10 % and 18 % of runs at 130 ms a run, 4000 steps 14 % and 21 % at 165 ms: the same finds per
# second, and 3000 keeps the sweep's cost near the plain arm's it replaces.
PREEMPT_STEPS = 3000
# Share of the guest's writes aimed at the page the sender read last.
AIM = 0.25
# Probability that a helper's step inside a critical section ends with it preempted, and for how
# many schedule steps, drawn per schedule (swarm-style: no one value for every bug).
RATES = (0.3,)
HOLDS = (30, 100)


class PreemptScheduler(RandomScheduler):
    """:class:`RandomScheduler`'s choices (same weights, hot pages, clock steps, cancel rate),
    except that a thread other than the migration thread which steps while holding a lock is
    preempted with probability :attr:`rate` for :attr:`hold` steps, and :data:`AIM` of the
    writes go to the page the sender read last. After the free steps nothing is preempted."""

    def __init__(self, seed: int, steps: int, cancels: int = 1) -> None:
        super().__init__(seed, steps, cancels=cancels)
        self.arm_rng = random.Random(f"dirtyproof-preempt-{seed}")
        self.rate = self.arm_rng.choice(RATES)
        self.hold = self.arm_rng.choice(HOLDS)
        self.off_until: dict[str, int] = {}     # preempted thread -> schedule step it may run at
        self.preemptions: list[tuple] = []      # (schedule step, thread, locks it held)
        self.last_read: int | None = None

    def describe(self) -> str:
        """One line: what the schedule drew, for a report."""
        return (f"preemption arm: helpers preempted inside a lock with probability {self.rate:g} for "
                f"{self.hold} steps, {AIM:g} of writes to the page read last")

    def _page(self, w) -> int:
        if self.last_read is not None and self.arm_rng.random() < AIM:
            return self.last_read
        return super()._page(w)

    def next_choice(self, w):
        """The next choice for ``w``, or ``None`` when the migration is over: the plain
        scheduler's, with preempted threads left out of its draw (:meth:`threads_to_draw`)."""
        for ev in w.events:             # what the previous step did
            if ev[0] == "read":
                self.last_read = ev[1]
        return super().next_choice(w)

    def threads_to_draw(self, w, free_run: bool) -> list[str]:
        """The runnable threads but those preempted and not yet due back (none after the free run:
        every thread may then finish)."""
        runnable = w.runnable_threads()
        if not free_run:
            self.off_until.clear()
        elif self.off_until:
            runnable = [t for t in runnable if self.off_until.get(t, 0) <= self.n]
        return runnable

    def thread_drawn(self, w, name: str, free_run: bool) -> None:
        """A helper drawn while it holds a lock is preempted after this step with probability
        :attr:`rate`: a change point inside its critical section, off the CPU for :attr:`hold`
        schedule steps (drawn from the arm's own generator)."""
        if free_run and name != "migration" and w.actors[name].held and self.arm_rng.random() < self.rate:
            self.off_until[name] = self.n + self.hold
            self.preemptions.append((self.n, name, tuple(w.actors[name].held)))


def preempt_arm(m: int, seed: int, steps: int = PREEMPT_STEPS) -> tuple[Config, PreemptScheduler]:
    """The ``m``-th preemption-arm run of a sweep: a named world (the default world, mixed, in
    each KVM mode first, then the next named world) and a :class:`PreemptScheduler` seeded
    ``seed`` with ``steps`` free steps."""
    from .strategies import named_world
    return named_world(m), PreemptScheduler(seed, steps)
