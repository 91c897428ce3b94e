"""A directed-schedule driver shared by the feature tests (multifd, dirty ring): choices applied
to a world one at a time, every invariant checked after each, as the runner does."""
from __future__ import annotations

from dirtyproof.impl import Config, World
from dirtyproof.spec import Checker


class Driver:
    """Applies choices to a world and checks every invariant after each (as the runner does)."""

    def __init__(self, design, cfg: Config) -> None:
        self.w = World(cfg, design)
        self.checker = Checker(self.w.design)
        self.violation = None
        self.kinds: list[str] = []

    def ap(self, *choice) -> str:
        """One step; the first property violation is kept, the step's kind recorded."""
        self.w.last_step = None
        label = self.w.step(list(choice))
        if self.w.last_step is not None:
            self.kinds.append(self.w.last_step.kind)
        v = self.checker.after_step(self.w, 0)
        self.violation = self.violation or v
        return label

    def until(self, pred, who="migration", limit=400) -> None:
        """Step thread ``who`` until ``pred()`` holds."""
        for _ in range(limit):
            if pred():
                return
            self.ap(who, None)
        raise AssertionError(f"{who} did not get there in {limit} steps")
