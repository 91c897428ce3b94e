"""dirtyproof.spec: the invariants, each with an id, a statement and an executable predicate."""
from .invariants import BY_ID, INVARIANTS, RUNTIME_CHECKS, Invariant, Violation, applicable, check_step

__all__ = ["BY_ID", "INVARIANTS", "RUNTIME_CHECKS", "Invariant", "Violation", "applicable", "check_step"]
