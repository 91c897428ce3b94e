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


def replayed(w, checks) -> None:
    """What checking does to a world besides its verdict, for a step being replayed (whose checks
    passed when it was first taken). The spec's bmap-full-after-setup check marks an attempt as
    checked once its bitmaps are set up; a replay must leave the same mark, and that is all."""
    mig = w.mig
    if mig is not None and getattr(mig, "bitmaps_ready", False) and not getattr(mig, "_setup_checked", False):
        check_step(w, checks)


__all__ = ["checks_for", "check", "replayed"]
