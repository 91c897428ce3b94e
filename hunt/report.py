"""What a hunt reports on a failure: a readable step list with layer diffs, and a replayable trace."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dirtyproof.impl import World
from dirtyproof.impl.trace import Trace
from dirtyproof.impl.world import ModelError, diff_snapshots

TRACE_DIR_ENV = "DIRTYPROOF_TRACE_DIR"
DEFAULT_TRACE_DIR = ".dirtyproof/traces"
# Worlds larger than this get a step list without per-layer diffs (snapshots would be costly).
DIFF_MAX_PAGES = 4096


def design_spec_of(design_cls) -> str:
    """How a trace names ``design_cls``: its shipped or mutant name if that resolves to it, else ``module:Class``."""
    from dirtyproof.impl.designs import DesignError, resolve

    try:
        if resolve(design_cls.name) is design_cls:
            return design_cls.name
    except DesignError:
        pass
    return f"{design_cls.__module__}:{design_cls.__qualname__}"


def is_final_run() -> bool:
    """Whether Hypothesis is replaying the minimal failing example (the one it reports)."""
    try:
        from hypothesis.control import current_build_context
        return bool(current_build_context().is_final)
    except Exception:  # outside a Hypothesis test: treat as final (direct use)
        return True


def step_list(design_cls, config, choices) -> list[str]:
    """Replay ``choices`` on a fresh world: one line per step with actor, label, page and layer diffs."""
    w = World(config, design_cls)
    diffs = w.ram_pages <= DIFF_MAX_PAGES
    lines = []
    for i, ch in enumerate(choices):
        before = w.snapshot() if diffs else None
        try:
            label = w.step(ch)
        except ModelError as exc:
            lines.append(f"  #{i:<4d} {ch[0]:10s} !! {exc}")
            break
        actor, arg = ch
        page = f" [{w.page_name(arg)}]" if actor == "device" or actor.startswith("vcpu") else ""
        line = f"  #{i:<4d} {actor:10s} {label}{page}"
        if diffs:
            changed = diff_snapshots(before, w.snapshot())
            if changed:
                line += "  | " + "; ".join(changed)
        lines.append(line)
    return lines


class HuntViolation(AssertionError):
    """A hunt found an invariant violation. On the final (shrunk) run it also carries the readable
    step list (:attr:`report`) and the saved trace (:attr:`trace_path`)."""

    def __init__(self, design_cls, design_spec: str, config, choices, labels, violation, step: int):
        super().__init__(f"{violation.invariant}: {violation.message}")
        self.design_cls = design_cls
        self.design_spec = design_spec
        self.config = config
        self.choices = [list(c) for c in choices]
        self.labels = list(labels)
        self.violation = violation
        self.step = step
        self.report: list[str] | None = None
        self.trace_path: Path | None = None

    @property
    def invariant(self) -> str:
        """The id of the violated invariant (or runtime check)."""
        return self.violation.invariant

    @property
    def length(self) -> int:
        """Steps of the counterexample, up to and including the violating one."""
        return len(self.choices)

    def trace(self) -> Trace:
        """The counterexample as a replayable trace."""
        v = self.violation
        return Trace(self.design_spec, self.config, self.choices, None, self.labels,
                     {"invariant": v.invariant, "step": self.step, "page": v.page, "message": v.message})

    def finalise(self, trace_dir: str | None = None) -> None:
        """Build the readable step list and save the trace (done once, for the reported example)."""
        self.report = step_list(self.design_cls, self.config, self.choices)
        tr = self.trace()
        digest = hashlib.sha1(json.dumps(tr.to_json(), sort_keys=True).encode()).hexdigest()[:8]
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.design_spec)
        folder = Path(trace_dir or os.environ.get(TRACE_DIR_ENV) or DEFAULT_TRACE_DIR)
        self.trace_path = tr.save(folder / f"{safe}-{self.invariant}-{self.length}steps-{digest}.json")
        self.args = (str(self),)

    def __str__(self) -> str:
        v = self.violation
        head = (f"{self.design_spec}: {v.invariant} violated at step {self.step}"
                f"{'' if v.page is None else f' (page {v.page})'}: {v.message}")
        if self.report is None:
            return head
        geo = self.config.geometry
        blocks = ", ".join(f"{b.name}@{b.offset}+{b.pages}{'' if b.fast_path else ' (slow path)'}"
                           for b in geo.blocks)
        lines = [head, f"world: kvm_mode={self.config.kvm_mode}, blocks {blocks}, "
                       f"clear_bmap_shift={geo.clear_bmap_shift}, switchover_pages={self.config.switchover_pages}",
                 f"counterexample ({self.length} steps):", *self.report]
        if self.trace_path is not None:
            lines.append(f"trace saved to {self.trace_path} (replay: dirtyproof replay {self.trace_path})")
        return "\n".join(lines)
