"""State-space reductions of the explorer (each justified in docs/explore.md, each switchable)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reductions:
    """Which reductions are on. With all off the explorer enumerates every enabled choice."""

    def prepare(self, w) -> None:
        """Learn what the reductions need from a fresh world of the exploration."""

    def key(self, w):
        """Extra fingerprint content the reductions need (none so far)."""
        return ()

    def filter(self, w, threads, env):
        """The choices to explore in ``w`` (all of them with the reductions off)."""
        return threads, env

    def describe(self) -> str:
        """One line naming the reductions on."""
        return "none"


__all__ = ["Reductions"]
