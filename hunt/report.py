"""What a hunt reports on a failure: a readable step list with layer diffs, and a replayable trace."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dirtyproof.impl import World
from dirtyproof.impl.config import DIRTY_RING
from dirtyproof.impl.trace import Trace
from dirtyproof.impl.world import NOVCPU, ModelError, diff_snapshots

TRACE_DIR_ENV = "DIRTYPROOF_TRACE_DIR"
DEFAULT_TRACE_DIR = ".dirtyproof/traces"
# Worlds larger than this get a step list without per-layer diffs (snapshots would be costly).
DIFF_MAX_PAGES = 4096


def design_spec_of(design_cls) -> str:
    """How a trace names ``design_cls``: its shipped or mutant name if that resolves to it, else ``module:Class``."""
    from dirtyproof.checked import resolve
    from dirtyproof.impl.designs import DesignError

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
        page = f" [{w.page_name(arg)}]" if actor in ("device", NOVCPU) or actor.startswith("vcpu") else ""
        line = f"  #{i:<4d} {actor:10s} {label}{page}"
        if diffs:
            changed = diff_snapshots(before, w.snapshot())
            if changed:
                line += "  | " + "; ".join(changed)
        lines.append(line)
    return lines


class RuleFinding:
    """A rule of QEMU's broken in some run of a hunt, with the schedule up to that step: a rule
    violation, not a verdict (no lost write shown by itself)."""

    def __init__(self, design_cls, design_spec: str, config, choices, violation, step: int):
        self.design_cls, self.design_spec, self.config = design_cls, design_spec, config
        self.choices = [list(c) for c in choices]
        self.violation, self.step = violation, step
        self.trace_path: Path | None = None

    @property
    def rule(self) -> str:
        """The rule's id."""
        return self.violation.invariant

    @property
    def length(self) -> int:
        """Steps up to and including the one that broke the rule."""
        return len(self.choices)

    def save(self, trace_dir: str | None = None) -> Path:
        """Save the schedule as a trace whose recorded violation is the rule's."""
        v = self.violation
        tr = Trace(self.design_spec, self.config, self.choices, None, None,
                   {"invariant": v.invariant, "step": self.step, "page": v.page, "message": v.message,
                    "kind": "rule"})
        self.trace_path = _save_trace(tr, self.design_spec, f"rule-{v.invariant}", self.length, trace_dir)
        return self.trace_path

    def __str__(self) -> str:
        v = self.violation
        out = (f"rule {v.invariant} broken at step {self.step}"
               f"{'' if v.page is None else f' (page {v.page})'}: {v.message} (a rule, no lost write shown)")
        if self.trace_path is not None:
            out += f"; trace {self.trace_path}"
        return out


def note_rule(stats: dict, design_cls, design_spec: str, config, choices, rv) -> None:
    """Record in a hunt's ``stats`` the first (shortest) run that broke rule ``rv.rule``."""
    rules = stats.setdefault("rules", {})
    old = rules.get(rv.rule)
    if old is None or rv.step + 1 < old.length:
        rules[rv.rule] = RuleFinding(design_cls, design_spec, config, list(choices)[:rv.step + 1],
                                     rv.violation, rv.step)


def _save_trace(tr: Trace, design_spec: str, what: str, length: int, trace_dir: str | None) -> Path:
    digest = hashlib.sha1(json.dumps(tr.to_json(), sort_keys=True).encode()).hexdigest()[:8]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in design_spec)
    folder = Path(trace_dir or os.environ.get(TRACE_DIR_ENV) or DEFAULT_TRACE_DIR)
    return tr.save(folder / f"{safe}-{what}-{length}steps-{digest}.json")


def _periods(c) -> str:
    """The world line's periods (ms) that differ from ``Config``'s defaults ("" if none do)."""
    from dataclasses import fields

    out = [f"{f.name}={getattr(c, f.name)}" for f in fields(c)
           if f.name.endswith("_ms") and getattr(c, f.name) != f.default]
    return "".join(", " + p for p in out)


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
        self.rule_violations: list = []     # rules broken on the way (spec.RuleViolation)
        self.lost_write = None              # after a coverage violation: the write lost at completion
        self.extension_steps = 0
        # set by the sweep when one of its schedules found it (None from the Hypothesis machine):
        # which schedule (index, sweep seed) and which arm ("swarm", "plain" or "preempt")
        self.sweep_index: int | None = None
        self.sweep_seed: int | None = None
        self.sweep_arm: str | None = None
        # set by the sweep when the counterexample was re-found on a smaller world than the long
        # run that found it first (runner.SmallOrigin, hunt/resmall.py); None otherwise
        self.small_world = None

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
        """Build the readable step list, replay the counterexample for the rules it breaks and,
        after a coverage violation, drive it on to completion to show the lost write; save the
        trace (done once, for the reported example)."""
        from dirtyproof.checked import run

        self.report = step_list(self.design_cls, self.config, self.choices)
        try:
            res = run(World(self.config, self.design_cls), self.choices, keep_log=False, extend=True)
            self.rule_violations = res.rule_violations
            self.lost_write = res.lost_write
            self.extension_steps = len(res.extension or ())
        except Exception:  # the report must not hide the counterexample it is about
            pass
        self.trace_path = _save_trace(self.trace(), self.design_spec, self.invariant, self.length, trace_dir)
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
        c = self.config
        lines = [head, f"world: kvm_mode={c.kvm_mode}, blocks {blocks}, word_bits={geo.word_bits}, "
                       f"clear_bmap_shift={geo.clear_bmap_shift}, switchover_pages={c.switchover_pages}, "
                       f"vcpus={c.vcpus}, burst={c.burst}, auto_converge={c.auto_converge}"
                       + (", free page hinting on" if c.free_page_hinting else "")
                       + (f", dirty ring {c.dirty_ring_size} entries, vCPU buffer {c.dirty_ring_buffer}"
                          + (", backup bitmap" if c.dirty_ring_with_bitmap else "")
                          if c.kvm_mode == DIRTY_RING else "")
                       + _periods(c),
                 *([self.small_world.describe()] if self.small_world is not None else []),
                 f"counterexample ({self.length} steps):", *self.report]
        for rv in self.rule_violations:
            lines.append(f"on the way: rule {rv.violation} at step {rv.step}")
        if v.invariant == "coverage":
            if self.lost_write is not None:
                lines.append(f"lost write: driven on to completion ({self.extension_steps} more steps, no "
                             f"more writes), {self.lost_write.message}")
            else:
                lines.append(f"lost write: none shown (driven on {self.extension_steps} steps without "
                             f"more writes; the attempt did not complete or the page was sent after all)")
        if self.trace_path is not None:
            lines.append(f"trace saved to {self.trace_path} (replay: dirtyproof replay {self.trace_path})")
        return "\n".join(lines)
