"""A checked run: apply a schedule to a world and judge every step by the spec.

This is where the model (``impl/``) and the checks (``spec/``) are composed; neither imports
the other. :func:`run` stops at the first property violation, records rule violations and goes
on, flags a deadlock or a run that never completes as ``progress``, and after a coverage
violation can drive the world on to completion to show the lost write.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dirtyproof.impl.crash import describe, design_label
from dirtyproof.impl.scheduler import DesignCrash, RandomScheduler
from dirtyproof.impl.world import BadChoice, ModelError, World
from dirtyproof.spec import Checker, Violation
from dirtyproof.spec.invariants import check_no_loss


@dataclass
class StepRecord:
    """One applied step: its index, the choice, and what it did."""

    index: int
    choice: list
    label: str


@dataclass
class RunResult:
    """The outcome of a run: the choices applied, counters, the first property violation if any,
    the rule violations seen on the way, and (after a coverage violation) the lost write that
    driving the run on to completion shows."""

    design: str
    choices: list = field(default_factory=list)
    log: list[StepRecord] = field(default_factory=list)
    violation: object = None
    violation_step: int | None = None
    checked: tuple = ()
    completed: bool = False             # the run (not an extension after it) completed the migration
    syncs: int = 0
    pages_sent: int = 0
    rule_violations: list = field(default_factory=list)
    warnings: list = field(default_factory=list)      # warnings (spec kind "warning") with their step
    rules_mattered: frozenset = frozenset()   # rules whose condition to matter held after some step
    extension: list | None = None       # choices that drove the run on after a coverage violation
    lost_write: object = None           # the no-loss violation the extension showed, or None

    @property
    def steps(self) -> int:
        """Number of steps applied."""
        return len(self.choices)

    @property
    def ok(self) -> bool:
        """Whether no invariant was violated."""
        return self.violation is None


def extend_to_completion(w: World, limit: int = 20000):
    """Drive ``w`` on after a coverage violation, with no more guest or device writes: switch
    over, then the migration thread first, other threads next, else the clock to the next
    wake-up, until the attempt ends. Returns ``(choices, lost)``: ``lost`` is the ``no-loss``
    violation at completion (the lost write, with source and destination versions), or ``None``
    when none shows (the attempt did not complete, or the page was sent after all)."""
    out: list = []

    def take(choice) -> bool:
        out.append(choice)
        try:
            w.step(choice)
        except (ModelError, BadChoice):
            return False
        return True

    if w.migration_active() and not w.mig.downtime_raised and w.mig.phase in ("setup", "active"):
        if not take(["mgmt", "switchover"]):
            return out, None
    while w.migration_active() and len(out) < limit:
        threads = w.runnable_threads()
        if threads:
            ok = take(["migration" if "migration" in threads else threads[0], None])
        else:
            wake = w.next_wakeup()
            if wake is None:
                break
            ok = take(["clock", wake - w.clock_ms])
        if not ok:
            break
    return out, (check_no_loss(w) if w.migration_done() else None)


def run(w: World, choices, check: bool = True, invariants=None, max_steps: int | None = None,
        keep_log: bool = True, extend: bool = False) -> RunResult:
    """Apply ``choices`` (a list, or a :class:`RandomScheduler`) to ``w`` and check invariants.

    Stops at the first property violation; a :class:`ModelError` (lock order) counts as a
    violation of its check, and a random run that never completes violates ``progress``. Rule
    violations are collected in ``rule_violations`` and the run goes on. After a coverage
    violation, ``extend`` drives the world on to completion (:func:`extend_to_completion`) to show
    the lost write."""
    checker = Checker(w.design, invariants)
    res = RunResult(design=w.design.name, checked=checker.checked)
    sched = choices if isinstance(choices, RandomScheduler) else None
    it = iter(choices) if sched is None else None
    limit = max_steps if max_steps is not None else (
        None if sched is None else sched.steps * 50 + 20000)
    while True:
        if sched is not None:
            choice = sched.next_choice(w)
            if choice is None:
                break
        else:
            choice = next(it, None)
            if choice is None:
                break
        idx = len(res.choices)
        if limit is not None and idx >= limit:
            res.violation = Violation("progress", f"no completion after {idx} steps")
            res.violation_step = idx
            break
        res.choices.append(list(choice))
        try:
            label = w.step(choice)
        except ModelError as exc:
            res.violation = Violation(exc.invariant, str(exc))
            res.violation_step = idx
            if keep_log:
                res.log.append(StepRecord(idx, list(choice), f"!! {exc}"))
            break
        except BadChoice:
            raise
        except Exception as exc:  # a bug in design code, not a verdict
            raise DesignCrash(f"design {design_label(w.design)} crashed at step {idx} {list(choice)}: "
                              f"{describe(exc)}") from exc
        if keep_log:
            res.log.append(StepRecord(idx, list(choice), label))
        if check:
            v = checker.after_step(w, idx)
            if v is not None:
                res.violation, res.violation_step = v, idx
                if extend and v.invariant == "coverage":
                    # the run itself stopped here: whether it completed is said of it, not of the
                    # extension that drives it on to show the lost write
                    stopped = (w.migration_done(), w.total_syncs, w.total_sent)
                    res.extension, res.lost_write = extend_to_completion(w)
                break
        cycle = w.deadlock() if w.lock_waiters() else None
        if cycle:
            res.violation = Violation("progress", f"deadlock: {cycle}")
            res.violation_step = idx
            break
    res.rule_violations = list(checker.rule_violations)
    res.warnings = list(checker.warnings)
    res.rules_mattered = frozenset(checker.mattered)
    if res.extension is None:
        res.completed, res.syncs, res.pages_sent = w.migration_done(), w.total_syncs, w.total_sent
    else:
        res.completed, res.syncs, res.pages_sent = stopped
    return res


__all__ = ["RunResult", "StepRecord", "run", "extend_to_completion"]
