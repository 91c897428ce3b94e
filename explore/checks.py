"""The one place the explorer calls the spec: which checks apply to a design, and checking a world.

Kept to two small functions so that when ``dirtyproof.spec`` splits into properties and rules the
explorer changes here and nowhere else.
"""
from __future__ import annotations

from dirtyproof.spec import applicable, check_step


def checks_for(design) -> tuple:
    """Everything of the spec checked for ``design`` after every step."""
    return applicable(design)


def check(w, checks):
    """The first violated check of world ``w`` just after a step, or ``None``."""
    return check_step(w, checks)


__all__ = ["checks_for", "check"]
