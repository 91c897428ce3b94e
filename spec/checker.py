"""Checking a run step by step: properties decide the verdict, rules are reported as rules.

One :class:`Checker` per run. After each step, :meth:`Checker.after_step` evaluates every
applicable invariant: the first property violation is returned (the run is unsafe there); a rule
violation is recorded, once per rule, with its step, and the run goes on looking for a property
violation. Every search (the runner, the hunt's machine and sweep, the prover's concretiser, the
explorer) uses it, so "unsafe" means the same thing everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from .invariants import PROPERTY, RULE, WARNING, Violation, applicable


@dataclass(frozen=True)
class RuleViolation:
    """A rule of QEMU's that did not hold at ``step`` of a run (no lost write shown by itself)."""

    violation: Violation
    step: int

    @property
    def rule(self) -> str:
        """The rule's id."""
        return self.violation.invariant

    def __str__(self) -> str:
        return f"rule {self.violation} (step {self.step})"


class Checker:
    """Evaluates ``invariants`` (default: all that apply to ``design``) after each step."""

    def __init__(self, design, invariants=None) -> None:
        invs = tuple(invariants) if invariants is not None else applicable(design)
        self.invariants = invs
        self.properties = tuple(i for i in invs if i.kind == PROPERTY)
        self.rules = tuple(i for i in invs if i.kind == RULE)
        self.warning_checks = tuple(i for i in invs if i.kind == WARNING)
        self.rule_violations: list[RuleViolation] = []
        self.warnings: list[RuleViolation] = []     # warnings, once each, with their step
        self._broken: set[str] = set()
        # rules that could matter after some step of the run (their ``matters`` held): a rule
        # that never could is reported as such, not as kept (ring rules in a world without rings)
        self.mattered: set[str] = set()

    @property
    def checked(self) -> tuple[str, ...]:
        """Ids of every invariant this checker evaluates."""
        return tuple(i.id for i in self.invariants)

    def after_step(self, w, step: int) -> Violation | None:
        """Record rule violations of this step; return the first property violation, if any."""
        for inv in self.rules:
            if inv.id in self._broken or not inv.matters(w):
                continue
            self.mattered.add(inv.id)
            v = inv.predicate(w)
            if v is not None:
                self._broken.add(inv.id)
                self.rule_violations.append(RuleViolation(v, step))
        for inv in self.warning_checks:
            if inv.id in self._broken:
                continue
            v = inv.evaluate(w)
            if v is not None:
                self._broken.add(inv.id)
                self.warnings.append(RuleViolation(v, step))
        for inv in self.properties:
            v = inv.evaluate(w)
            if v is not None:
                return v
        return None

    def first_rule(self) -> RuleViolation | None:
        """The earliest rule violation of the run, or ``None``."""
        return self.rule_violations[0] if self.rule_violations else None
