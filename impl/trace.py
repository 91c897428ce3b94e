"""Traces: a run's design, config and choices as JSON, replayable to the same state and verdict.

Format (version 1)::

    {"dirtyproof_trace": 1, "design": "periodic" | "module:Class",
     "config": {...Config.to_json()...}, "seed": 7 | null,
     "steps": [["mgmt", "start"], ["vcpu0", 70], ["migration", null], ...],
     "labels": ["migrate (attempt 1)", ...],            # optional, informative
     "violation": {"invariant": "coverage", "step": 41, "page": 70, "message": "..."} | null}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import Config

TRACE_VERSION = 1


class TraceError(ValueError):
    """A trace file that cannot be read or does not describe a run."""


@dataclass
class Trace:
    """A replayable run."""

    design: str
    config: Config
    steps: list
    seed: int | None = None
    labels: list | None = None
    violation: dict | None = None

    def to_json(self) -> dict:
        """The JSON object written to a trace file."""
        return {"dirtyproof_trace": TRACE_VERSION, "design": self.design, "config": self.config.to_json(),
                "seed": self.seed, "steps": self.steps, "labels": self.labels, "violation": self.violation}

    def save(self, path: str | Path) -> Path:
        """Write the trace as JSON to ``path`` (parents created) and return the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return p

    @classmethod
    def from_result(cls, design_spec: str, config: Config, res, seed: int | None = None) -> "Trace":
        """The trace of a finished run (a :class:`dirtyproof.checked.RunResult`: its choices,
        labels and first violation). Replaying it is :func:`dirtyproof.checked.replay`."""
        viol = None
        if res.violation is not None:
            viol = {"invariant": res.violation.invariant, "step": res.violation_step,
                    "page": res.violation.page, "message": res.violation.message}
        return cls(design_spec, config, [list(c) for c in res.choices], seed,
                   [r.label for r in res.log] if res.log else None, viol)

    @classmethod
    def load(cls, path: str | Path) -> "Trace":
        """Read a trace file; :class:`TraceError` with one clear sentence if it is malformed."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise TraceError(f"no such trace file: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TraceError(f"cannot read trace {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise TraceError(f"trace {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_json(data, str(path))

    @classmethod
    def from_json(cls, data, where: str = "trace") -> "Trace":
        """Validate and build a trace from its JSON object."""
        if not isinstance(data, dict) or data.get("dirtyproof_trace") != TRACE_VERSION:
            raise TraceError(f"{where} is not a dirtyproof trace (version {TRACE_VERSION})")
        design = data.get("design")
        if not isinstance(design, str) or not design:
            raise TraceError(f"{where}: 'design' must be a design name")
        steps = data.get("steps")
        if not isinstance(steps, list):
            raise TraceError(f"{where}: 'steps' must be a list of [actor, argument]")
        for i, s in enumerate(steps):
            if not (isinstance(s, list) and len(s) == 2 and isinstance(s[0], str)
                    and (s[1] is None or isinstance(s[1], (int, str)))):
                raise TraceError(f"{where}: step {i} is not [actor, argument]: {s!r}")
        if "config" not in data:
            # the world a trace ran on is part of it: replaying it on the default world would
            # replay another run
            raise TraceError(f"{where}: no 'config' (the world the trace ran on)")
        try:
            config = Config.from_json(data["config"])
        except (ValueError, TypeError) as exc:
            raise TraceError(f"{where}: bad config: {exc}") from None
        seed = data.get("seed")
        return cls(design, config, steps, seed if isinstance(seed, int) else None,
                   data.get("labels"), data.get("violation"))

