"""The one place the explorer calls the spec: which checks apply to a design, and checking a world.

Properties decide: :func:`check` returns the first property a step breaks. QEMU's rules are
reported as rules (:func:`rules`), each evaluated only where it can matter, and the search goes
on for a property violation, as everywhere else (``dirtyproof.spec.checker``).
"""
from __future__ import annotations

from dirtyproof.spec import PROPERTY, RULE, applicable


def checks_for(design) -> tuple:
    """Everything of the spec checked for ``design`` after every step."""
    return applicable(design)


def check(w, checks):
    """The first property world ``w`` violates just after a step, or ``None``."""
    for inv in checks:
        if inv.kind == PROPERTY:
            v = inv.evaluate(w)
            if v is not None:
                return v
    return None


def rules(w, checks) -> list:
    """The rules world ``w`` breaks just after a step (where they can matter)."""
    out = []
    for inv in checks:
        if inv.kind == RULE:
            v = inv.evaluate(w)
            if v is not None:
                out.append(v)
    return out


__all__ = ["checks_for", "check", "rules"]
