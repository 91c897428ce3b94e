"""The state-space reductions of the explorer, each switchable (justified in docs/explore.md)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reductions:
    """Which reductions are on.

    ``por``: partial-order reduction. An environment move (a write or a clock move) that
    commutes with every thread step enabled in a state is not taken there: it is taken later,
    just before a step it does not commute with. Management commands are always taken.

    ``subsumption``: budget subsumption. A state whose world is a known node's, no deeper, and
    whose budgets that node's dominate (at least as many moves of each kind left, and more
    preemptions left, or as many with no worse a last thread) is not explored: every path from
    it is a path from that node (explore/choices.py ``dominates``).

    ``deadlines``: read deadlines. A clock move targets every wake-up and 1 ms past each reference
    time plus each period that the run's code reads (a fixpoint: a step that reads a new one
    starts the run again), not those of the config no code reads (explore/deadlines.py)."""

    por: bool = True
    subsumption: bool = True
    deadlines: bool = True

    def describe(self) -> str:
        """One line naming the reductions on."""
        on = [n for n, v in (("partial-order", self.por), ("budget subsumption", self.subsumption),
                             ("read deadlines", self.deadlines)) if v]
        return ", ".join(on) if on else "none"


NONE = Reductions(por=False, subsumption=False, deadlines=False)

__all__ = ["Reductions", "NONE"]
