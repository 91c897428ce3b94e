"""The state-space reductions of the explorer, each switchable (justified in docs/explore.md)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reductions:
    """Which reductions are on.

    ``por``: partial-order reduction. An environment move (a write or a clock move) that
    commutes with every thread step enabled in a state is not taken there: it is taken later,
    just before a step it does not commute with. Management commands are always taken."""

    por: bool = True

    def describe(self) -> str:
        """One line naming the reductions on."""
        on = [n for n, v in (("partial-order", self.por),) if v]
        return ", ".join(on) if on else "none"


NONE = Reductions(por=False)

__all__ = ["Reductions", "NONE"]
