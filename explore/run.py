"""Explorations as the command line and ``check`` run them: every KVM mode, summaries, traces."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .bounds import Bounds, default_config
from .engine import Result, explore
from .portfolio import gate_portfolio
from .reductions import Reductions
from .report import save_trace, step_lines, summary, trace_file


@dataclass
class Outcome:
    """One exploration's result and its printed text (summary, step list, trace path)."""

    result: Result
    text: str
    trace_path: object = None
    label: str = ""
    note: str = ""          # explore/width.py's note on a counterexample, if any (not a verdict)
    trace: object = None    # the counterexample's Trace, when it was named but not written (save=False)


def config_for(mode: str, base=None):
    """The explored config for KVM ``mode``: ``base`` (a user's Config) or the default small world."""
    if base is None:
        return default_config(mode)
    return replace(base, kvm_mode=mode)


def explore_runs(design_cls, design_spec: str, runs, reductions: Reductions, order: str = "moves",
                 trace_dir=None, steps: bool = True, progress=None, progress_for=None, save: bool = True):
    """Explore ``design_cls`` once per ``(label, config, bounds)`` of ``runs``, in order; yields an
    :class:`Outcome` for each (its text starts with the label). The caller stops at a violation.
    ``progress_for(label)``, if given, makes each run's progress callback (instead of
    ``progress``); with ``save=False`` a counterexample's trace is named but not written
    (``Outcome.trace``: a worker process leaves the writing to its parent)."""
    for label, cfg, bounds in runs:
        res = explore(design_cls, cfg, bounds, reductions,
                      progress if progress_for is None else progress_for(label), order)
        lines = [f"[{label}]"] + summary(res)
        path, note, tr = None, "", None
        if res.violation is not None:
            if save:
                path = save_trace(res, design_spec, trace_dir)
            else:
                tr, path = trace_file(res, design_spec, trace_dir)
            if steps:
                lines.append(f"counterexample ({len(res.path)} steps):")
                lines.extend(step_lines(res, design_cls))
            if res.pump is not None:
                n = len(res.path)
                # numbered as the step list (#0 first)
                lines.append(f"the loop: steps #{res.pump.prefix}-#{n - 1} are one turn; after it the state is the "
                             f"one after #{res.pump.prefix - 1} but for the statistics (explore/converge.py)")
            lines.append(f"trace saved to {path} (replay: dirtyproof replay {path})")
            # a narrow-word world: say so if the design reads L2 words outside the block it syncs
            from .width import foreign_l2_words
            note = foreign_l2_words(design_cls, cfg) or ""
            if note:
                lines.append(note)
        yield Outcome(res, "\n".join(lines), path, label, note, tr)


def explore_modes(design_cls, design_spec: str, modes, bounds: Bounds, reductions: Reductions,
                  base_config=None, order: str = "moves", trace_dir=None, steps: bool = True, progress=None):
    """Explore ``design_cls`` once per KVM mode within one bound; yields an :class:`Outcome` for each."""
    runs = [(mode, config_for(mode, base_config), bounds) for mode in modes]
    yield from explore_runs(design_cls, design_spec, runs, reductions, order, trace_dir, steps, progress)


def portfolio_runs(entries=None) -> list:
    """``(label, config, bounds)`` of every exploration of the portfolio (default: the one
    ``$DIRTYPROOF_EXPLORE_BOUND`` chooses, the default bound unless set)."""
    return [(label, cfg, e.bounds) for e in (entries or gate_portfolio()) for label, cfg in e.runs()]


__all__ = ["Outcome", "explore_modes", "explore_runs", "portfolio_runs", "config_for"]
