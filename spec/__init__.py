"""dirtyproof.spec: the properties and QEMU's rules, each with an id, a statement and an executable predicate."""
from .checker import Checker, RuleViolation
from .invariants import (BY_ID, INVARIANTS, PROPERTY, RULE, RUNTIME_CHECKS, WARNING, Invariant, Violation, applicable,
                         check_step)

__all__ = ["BY_ID", "INVARIANTS", "PROPERTY", "RULE", "RUNTIME_CHECKS", "WARNING", "Checker", "Invariant", "RuleViolation",
           "Violation", "applicable", "check_step"]
