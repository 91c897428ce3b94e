"""Replaying a trace: the same design, world and choices, judged again by the spec."""
from __future__ import annotations

from dirtyproof.impl.trace import Trace, TraceError
from dirtyproof.impl.world import BadChoice, World

from .designs import resolve
from .run import RunResult, run


def replay(trace: Trace, design_cls=None, keep_log: bool = True, extend: bool = False,
           progress=None) -> tuple[World, RunResult]:
    """Re-run ``trace`` on a fresh world (design resolved from its name unless given);
    ``extend``: after a coverage violation, drive on to completion to show the lost write.
    ``progress``, if given, wraps the list of choices (to report on a long replay).

    A step that is not enabled in the replayed world raises :class:`TraceError`."""
    if design_cls is None:
        design_cls = resolve(trace.design)
    w = World(trace.config, design_cls)
    try:
        res = run(w, trace.steps if progress is None else progress(trace.steps), keep_log=keep_log,
                  extend=extend)
    except BadChoice as exc:
        why = ("" if trace.model is not None else
               " (the trace names no model version: it was recorded before 2026-12-03, by a model whose "
               "atomic steps differ; record it again)")
        raise TraceError(f"trace does not replay: step {w.steps}: {exc}{why}") from None
    return w, res
