"""Traces: a run's design, config and choices as JSON, replayable to the same state and verdict.

Format (version 1)::

    {"dirtyproof_trace": 1, "design": "periodic" | "module:Class",
     "config": {...Config.to_json()...}, "seed": 7 | null,
     "steps": [["mgmt", "start"], ["vcpu0", 70], ["migration", null], ...],
     "labels": ["migrate (attempt 1)", ...],            # optional, informative
     "violation": {"invariant": "coverage", "step": 41, "page": 70, "message": "..."} | null,
     "model": 2}                                        # optional: the model's step structure

``model`` is :data:`MODEL_VERSION` of the dirtyproof that recorded the trace. A choice names an
actor, not a step, so the same choices drive a different run on a model whose atomic steps are
cut differently; a trace of another model version is refused with one line, and one without the
field (recorded before it was written) is replayed, its failure to replay naming the likely cause.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import Config

TRACE_VERSION = 1
# The model's step structure: bumped whenever the same choices would drive another run (where the
# world ends a step). 1: before 2026-12-03; 2: a release then an acquire are two steps
# (impl/world.py ``World.acquire``).
MODEL_VERSION = 2


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
    model: int | None = MODEL_VERSION    # None: a trace recorded before the field was written

    def to_json(self) -> dict:
        """The JSON object written to a trace file."""
        return {"dirtyproof_trace": TRACE_VERSION, "design": self.design, "config": self.config.to_json(),
                "seed": self.seed, "steps": self.steps, "labels": self.labels, "violation": self.violation,
                "model": MODEL_VERSION if self.model is None else self.model}

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
        model = data.get("model")
        if model is not None and (not isinstance(model, int) or isinstance(model, bool)):
            raise TraceError(f"{where}: 'model' must be an integer (the model version), not {model!r}")
        if model is not None and model != MODEL_VERSION:
            raise TraceError(f"{where} was recorded by model version {model}, and this dirtyproof's model is "
                             f"version {MODEL_VERSION}: its atomic steps differ, so its choices drive another "
                             f"run; record it again with this version")
        seed = data.get("seed")
        return cls(design, config, steps, seed if isinstance(seed, int) else None,
                   data.get("labels"), data.get("violation"), model)

