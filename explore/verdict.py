"""The explorer as one engine of ``check`` and ``prove``: the default bound on one design, as data.

:func:`judge` explores every run of the portfolio in order and stops at the first violation; the
verdict is ``unsafe`` (a property broke, the counterexample saved as a trace), ``safe`` (every run
exhausted its bound: "exhaustive within bounds B", never "proved for all sizes") or ``cut`` (a
run hit ``max_depth``/``max_states``: nothing was shown). :func:`expected` reads the explorer's
expectation from mutants/manifest.json (the one home of expectations); a design not there is
expected safe, as everywhere else.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from .reductions import Reductions
from .run import explore_runs, portfolio_runs

SAFE, UNSAFE, CUT = "safe", "unsafe", "cut"


@dataclass
class RunSummary:
    """One run of the portfolio: its label, states, depth, seconds and outcome."""

    label: str
    distinct: int
    generated: int
    depth: int
    seconds: float
    outcome: str                   # exhaustive, cut, or the violated property
    steps: int | None = None       # the counterexample's length
    subsumed: int = 0              # states budget subsumption did not make


@dataclass
class Judgement:
    """The explorer's verdict on a design over the default bound (picklable: check runs it in a
    worker process)."""

    verdict: str                   # safe, unsafe or cut
    invariant: str | None = None
    steps: int | None = None
    label: str | None = None       # the run that decided (found the violation)
    trace: str | None = None
    seconds: float = 0.0
    runs: list = field(default_factory=list)
    text: str = ""                 # every run's printed summary
    note: str = ""                 # a note on the counterexample (explore/width.py), not a verdict

    def detail(self) -> str:
        """One line per run (what the check table prints), then the counterexample's, if any."""
        lines = [f"{r.label}: {r.distinct} distinct states, depth {r.depth}, {r.seconds:.1f} s: {r.outcome}"
                 + (f" in {r.steps} steps" if r.steps is not None else "") for r in self.runs]
        if self.verdict == SAFE:
            lines.append("no violation: exhaustive within bounds B of each run (explore/portfolio.py)")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def to_json(self) -> dict:
        """A JSON-able form."""
        return asdict(self)


def judge(design_cls, design_spec: str, trace_dir=None, runs=None, steps: bool = False,
          progress=None, reductions: Reductions | None = None) -> Judgement:
    """Explore ``design_cls`` over the default bound (or ``runs``: ``(label, config, bounds)``),
    with every reduction on (or ``reductions``: the benchmark's comparisons)."""
    t0 = time.perf_counter()
    out = Judgement(SAFE)
    texts = []
    for o in explore_runs(design_cls, design_spec, runs or portfolio_runs(), reductions or Reductions(), trace_dir=trace_dir,
                          steps=steps, progress=progress):
        r = o.result
        outcome = (r.violation.invariant if r.violation is not None else "exhaustive" if r.exhaustive else CUT)
        out.runs.append(RunSummary(o.label, r.distinct, r.generated, r.depth, r.seconds, outcome,
                                   len(r.path) if r.violation is not None else None, r.subsumed))
        texts.append(o.text)
        if r.violation is not None:
            out.verdict, out.invariant, out.steps, out.label = UNSAFE, r.violation.invariant, len(r.path), o.label
            out.trace = str(o.trace_path)
            out.note = o.note
            break
        if not r.exhaustive:
            out.verdict = CUT
    out.seconds = time.perf_counter() - t0
    out.text = "\n".join(texts)
    return out


def combine(parts: list) -> Judgement:
    """One judgement from the judgements of single runs, given in the portfolio's order: the
    first violation decides (the runs after it are not counted, as :func:`judge` would not have
    taken them); else ``cut`` if a run was cut; else ``safe``."""
    out = Judgement(SAFE)
    texts = []
    for p in parts:
        out.runs.extend(p.runs)
        out.seconds += p.seconds
        texts.append(p.text)
        if p.verdict == UNSAFE:
            out.verdict, out.invariant, out.steps, out.label, out.trace = UNSAFE, p.invariant, p.steps, p.label, p.trace
            out.note = p.note
            break
        if p.verdict == CUT:
            out.verdict = CUT
    out.text = "\n".join(texts)
    return out


def expected(design_spec: str, design_cls) -> dict:
    """The explorer's expectation for a design: the manifest's ``explore`` entry of a shipped design
    or corpus mutant (``{"verdict": ..., "property": ..., "steps": ...}``), else ``{"verdict": "safe"}``
    (a user's design, like every design, is expected safe)."""
    from dirtyproof.impl.designs import DESIGNS
    try:
        from dirtyproof.mutants import MUTANTS, load_manifest
    except ImportError:
        return {"verdict": SAFE}
    m = load_manifest()
    if MUTANTS.get(design_spec) is design_cls:
        return m["mutants"][design_spec]["explore"]
    if DESIGNS.get(design_spec) is design_cls:
        return m["designs"][design_spec]["explore"]
    return {"verdict": SAFE}


def expected_within(design_spec: str, design_cls, bound: str) -> dict:
    """:func:`expected` for the bound actually run: under the ``threads`` bound (its first entry
    only) an unsafe design the manifest says a later run finds is not compared (``any``, said in
    the table); a safe one must still be exhausted safe. Under the ``deep`` bound, the entry's
    ``deep`` expectation where the manifest has one (every design the default bound does not
    find unsafe has one), else the default bound's."""
    want = expected(design_spec, design_cls)
    if bound == "deep":
        # the default bound's runs come first, so what it finds the deep bound finds; the
        # manifest's "deep" entry says what the runs after them do (a safe design's own
        # expectation, or background-v1's loss)
        return want.get("deep", want)
    want = {k: v for k, v in want.items() if k != "deep"}
    if bound == "default" or want["verdict"] == SAFE:
        return want
    if want["verdict"] == UNSAFE and str(want.get("run", "")).startswith("threads/"):
        return want
    return {"verdict": "any"}


def matches(j: Judgement, want: dict) -> tuple[bool, str]:
    """Whether judgement ``j`` is what ``want`` (see :func:`expected`) says, and why not."""
    if want["verdict"] == "any":
        return True, ""
    if j.verdict != want["verdict"]:
        return False, f"expected {want['verdict']}, got {j.verdict}"
    if j.verdict == UNSAFE:
        prop = want.get("property")
        if prop is not None and j.invariant != prop:
            return False, f"expected {prop} to break, got {j.invariant}"
        limit = want.get("steps")
        if limit is not None and j.steps != limit:
            # the counterexample is the cheapest in the order: its length is a fact of the bound
            return False, f"expected the cheapest counterexample to take {limit} steps, got {j.steps}"
    return True, ""


__all__ = ["Judgement", "RunSummary", "combine", "judge", "expected", "expected_within", "matches", "SAFE", "UNSAFE", "CUT"]
