"""``dirtyproof prove``: per design and configuration, each obligation with verdict and time; for an
unsafe design the counterexample as a step list and the path of its replayable trace."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import design_class, design_specs
from .errors import UserError
from .paths import add_trace_dir_argument, output_dir, trace_dir


from dirtyproof.impl.config import DIRTY_RING


def add_arguments(p) -> None:
    """Flags of ``prove``."""
    p.add_argument("--design", help="design name, module:Class or path/to/file.py:Class (default: every shipped design)")
    p.add_argument("--config", action="append", metavar="KVM_MODE/GEOMETRY",
                   help="configuration, repeatable (default: all six, e.g. manual/mixed)")
    p.add_argument("--smt2", metavar="DIR", help="write every Z3 query as SMT-LIB 2 into DIR")
    add_trace_dir_argument(p)
    p.add_argument("--timeout-ms", type=int, default=5000, help="per-query Z3 time limit")
    p.add_argument("--tail", type=int, default=15, help="steps of a counterexample to print")
    p.add_argument("--explore-bound", choices=("threads", "default", "deep"),
                   help="for a design without a per-page encoding, the explorer's bound: threads (the "
                        "default for several designs), default (its whole default bound; the default "
                        "for one design) or deep (the default bound, then four moves on one page: "
                        "minutes more); also $DIRTYPROOF_EXPLORE_BOUND")


# Why the prover claims nothing in dirty ring mode (docs/proofs.md, "The dirty ring").
RING_NOT_PROVED = ("no proof in KVM mode dirty_ring: the per-page encoding has no state for a vCPU's "
                   "buffer or ring entry (a per-vCPU queue, reset in order and full after dirty_ring_size "
                   "entries, not a per-page bit), so the per-page argument is not made there; hunt, explore "
                   "and run take --kvm-mode dirty_ring")


def selected_configs(args) -> list[str]:
    """The configurations named on the command line, validated."""
    from dirtyproof.proofs.runner import CONFIGS, parse_config
    cfgs = args.config or list(CONFIGS)
    for c in cfgs:
        if c.partition("/")[0] == DIRTY_RING:
            raise UserError(RING_NOT_PROVED)
        try:
            parse_config(c)
        except ValueError as exc:
            if c.endswith(".json"):
                raise UserError(f"{exc}: prove proves the configurations the per-page abstraction "
                                f"covers, not a JSON world (dirtyproof run takes one)") from None
            raise UserError(str(exc)) from None
    return cfgs


def print_result(res, tail: int) -> None:
    """One configuration's obligations, verdict and counterexample."""
    print(f"{res.design} {res.config}: {res.verdict.upper()} ({res.seconds:.2f} s)")
    for o in res.obligations:
        extra = f"  [{o.detail[:300]}]" if o.detail and o.verdict != "proved" else ""
        print(f"  {o.name:12s} {o.verdict:9s} {o.seconds:6.2f} s  {o.queries} queries{extra}")
    if res.bmc is not None:
        b = res.bmc
        print(f"  bmc          {b.status:9s} {b.seconds:6.2f} s  shortest depth {b.depth} "
              f"({b.explored} abstract states, Z3-confirmed: {b.confirmed})")
        if b.path:
            print("  abstract counterexample (last steps):")
            for r, f in b.path[-tail:]:
                facts = ",".join(k for k, v in f.items() if v)
                print(f"    {r.id}{' [' + facts + ']' if facts else ''}")
    if res.concrete is not None:
        c = res.concrete
        how = ("followed the abstract path" if c.method == "guided" else
               "RANDOM FALLBACK: the guided search failed, this schedule does not follow the path")
        print(f"  concrete: {c.invariant} on page {c.page} at step {c.violation_step} "
              f"({c.length} choices, {c.method}: {how}, {c.seconds:.2f} s); last steps:")
        for choice, label in c.steps[-tail:]:
            print(f"    {choice[0]:10s} {label}")
        if c.path is not None:
            print(f"  trace: {c.path} (replay: dirtyproof replay {c.path})")


def _corpus_mutant(spec: str, cls):
    """The manifest entry of ``spec`` if it names a corpus mutant, else None."""
    try:
        from dirtyproof.mutants import MUTANTS, load_manifest
    except ImportError:
        return None
    if MUTANTS.get(spec) is not cls:
        return None
    return load_manifest()["mutants"][spec]


def _counting(cls, runner):
    """The counting lemmas against ``cls``'s own sync (``proofs.counting_conformance``), or None
    (with a line saying why) when the design's sync cannot be run alone."""
    from dirtyproof.impl.crash import describe
    from dirtyproof.impl.scheduler import DesignCrash
    from dirtyproof.proofs.counting_conformance import check_counting

    try:
        return check_counting(cls, runner)
    except DesignCrash:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's design that cannot run its sync alone
        from .interrupt import was_interrupted
        if was_interrupted():     # a Ctrl-C that ctypes wrapped in an ArgumentError: still a Ctrl-C
            raise KeyboardInterrupt from exc
        print(f"counting: the design's sync cannot be run alone: {describe(exc)}")
        return None


def _without_encoding(spec: str, cls, cfgs, counting, exc, traces=None) -> str:
    """What ``prove`` does for a design without a per-page encoding: the counting lemmas, the
    seeded random runs of each selected configuration and the explorer over its default bound,
    each said in one line; the verdict (``unsafe`` if one of them breaks the design, else ``not
    proved``: the explorer's "exhaustive within bounds B" is no proof for all sizes)."""
    from dirtyproof.proofs.mutant_encodings import NOT_EXPRESSIBLE

    from .judges import RUN_SEEDS, RUN_STEPS, random_runs

    runs = {c: random_runs(cls, c) for c in cfgs}
    bad = {c: r for c, r in runs.items() if r != "ok"}
    counted = counting.verdict if counting is not None else "n/a"
    explored = _explore(spec, cls, traces)
    verdict = "unsafe" if bad or counted == "unsafe" or explored == "unsafe" else "not proved"
    why = NOT_EXPRESSIBLE.get(spec)
    found = "; ".join(f"{c}: {r}" for c, r in bad.items()) or "no violation"
    print(f"{spec}: no per-page encoding ({why or exc}); instead ran the counting lemmas ({counted}), "
          f"{RUN_SEEDS} seeded random runs of {RUN_STEPS} steps in each of {len(cfgs)} configuration(s) "
          f"({found}) and the explorer ({explored}): {verdict.upper()} "
          f"(check also hunts it: dirtyproof check --design {spec})")
    return verdict


def _explore(spec: str, cls, traces) -> str:
    """The explorer over its default bound (explore/portfolio.py), printed run by run: ``unsafe``
    (with the counterexample's trace), ``exhaustive within bounds B`` or ``cut``."""
    from dirtyproof.explore.verdict import SAFE, UNSAFE, judge

    from dirtyproof.explore.portfolio import chosen_bound
    sys.stderr.write(f"prove: exploring {spec} within the explorer's {chosen_bound()} bound ...\n")
    j = judge(cls, spec, trace_dir=None if traces is None else str(traces), steps=False)
    print(j.text)
    if j.verdict == UNSAFE:
        print(f"{spec}: explorer: {j.invariant} broken after {j.steps} steps in {j.label} "
              f"(trace: {j.trace}; replay: dirtyproof replay {j.trace})")
        return UNSAFE
    if j.verdict == SAFE:
        print(f"{spec}: explorer: no violation: exhaustive within bounds B of each run above "
              f"(not proved for all sizes)")
        return "exhaustive within bounds B"
    print(f"{spec}: explorer: NOT exhaustive (a run was cut by max_depth/max_states): nothing shown")
    return "cut"


def run(args) -> int:
    """Prove the selected designs; exit 0 iff each verdict matches the recorded expectation
    (a design without one must be proved safe; a corpus mutant must get the manifest's verdict,
    i.e. unsafe in at least one selected configuration, and never ``unknown``)."""
    from dirtyproof.proofs.registry import NoEncoding
    from dirtyproof.proofs.runner import EncodingBug, EncodingMismatch, expected_verdicts, prove_config
    from dirtyproof.proofs.solver import QueryRunner

    if args.timeout_ms <= 0:
        raise UserError("--timeout-ms must be positive")
    if args.tail < 0:
        raise UserError("--tail must be >= 0")
    specs = design_specs(args.design)
    cfgs = selected_configs(args)
    from dirtyproof.explore.portfolio import apply_bound_flag, gate_default
    try:
        # before any work, workers inherit it; one design gets the whole default bound
        apply_bound_flag(getattr(args, "explore_bound", None), gate_default(len(specs)))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    smt2 = output_dir(args.smt2, "--smt2")
    traces = trace_dir(args)
    runner = QueryRunner(args.timeout_ms, smt2)
    expected = expected_verdicts()
    ok = True
    t0 = time.perf_counter()
    for spec in specs:
        cls = design_class(spec)
        mutant = _corpus_mutant(spec, cls)
        counting = _counting(cls, runner)
        got, no_encoding = [], False
        for cfg in cfgs:
            sys.stderr.write(f"prove: {spec} {cfg} ({time.perf_counter() - t0:.0f} s so far) ...\n")
            try:
                # a corpus mutant's concrete counterexample is the hunter's: stop at the abstract one
                res = prove_config(spec, cls, cfg, runner, traces, replay=mutant is None)
            except NoEncoding as exc:
                got, no_encoding = [_without_encoding(spec, cls, cfgs, counting, exc, traces)], True
                break
            except EncodingMismatch as exc:
                # a user's encoding that is not its design's: loud, and nothing proved with it
                print(f"ENCODING MISMATCH: {exc}")
                print(f"  !! {spec}'s per_page_encoding does not describe the design; no proof was run")
                ok = False
                got.append("mismatch")
                continue
            except EncodingBug as exc:
                print(f"ENCODING BUG: {exc}")
                return 1
            print_result(res, args.tail)
            got.append(res.verdict)
            if mutant is not None:
                if res.verdict == "unsafe":
                    from dirtyproof.proofs.registry import encoding_for
                    from dirtyproof.proofs.mutant_encodings import rules_broken, violated_property
                    enc = encoding_for(cls)
                    broken = violated_property(res.bmc.states[-1], enc)
                    print(f"  counterexample breaks {broken} at q; abstract only (corpus mutant; the "
                          f"concrete one: dirtyproof hunt --design {spec})")
                    for i, rule in rules_broken(res.bmc.states, enc):
                        print(f"  on the way it breaks QEMU's rule {rule} at abstract state {i} (a rule, not the verdict)")
                elif res.verdict == "unknown":
                    ok = False
                    print("  !! unknown is a failure")
                continue
            want = expected.get(spec, {}).get(cfg, "safe")
            if res.verdict != want:
                ok = False
                print(f"  !! expected {want}")
        if no_encoding and got == ["not proved"]:
            # nothing to compare: the prover had nothing to prove, the line above says what ran
            if mutant is not None:
                print(f"{spec}: not compared with the manifest ({mutant['verdict']}): no per-page encoding")
            continue
        if no_encoding and mutant is None:
            ok = False          # a user's or shipped design is expected safe; the runs broke it
            print(f"  !! {spec}: expected safe")
            continue
        if counting is None:
            ok = False
            print(f"{spec}: counting: !! the design's sync could not be run alone (see above)")
        else:
            print(f"{spec}: {counting.summary()}")
            from dirtyproof.impl.designs import DESIGNS
            if counting.verdict == "unknown" and mutant is None and DESIGNS.get(spec) is not cls:
                print("  (not covered: the runs and the hunt check this design's counters after every step)")
            elif counting.verdict == "unknown" or (mutant is None and counting.verdict != "safe"):
                ok = False
                print("  !! the counting lemmas do not cover this design's counters")
            elif counting.verdict == "unsafe" and "unsafe" not in got:
                got.append("unsafe")
        if mutant is not None:
            # the manifest's verdict is over every configuration the hunter draws: a mutant is
            # safe for the prover only if every configuration is proved
            from dirtyproof.proofs.runner import CONFIGS
            overall = "unsafe" if "unsafe" in got else ("safe" if set(got) == {"safe"} else "unknown")
            how = ("by the counting lemmas" if counting is not None and counting.verdict == "unsafe"
                   else "by the seeded random runs: no per-page encoding" if no_encoding
                   else f"unsafe in {got.count('unsafe')} of {len(got)} configurations")
            line = f"{spec}: {overall} ({how}); manifest: {mutant['verdict']}"
            if overall == "safe" and set(cfgs) != set(CONFIGS):
                line += " (not compared: select every configuration)"
            elif overall != mutant["verdict"]:
                ok = False
                line += "  !! disagrees"
            print(line)
    print(f"{len(runner.log)} queries in {time.perf_counter() - t0:.1f} s"
          + (f", SMT-LIB 2 in {args.smt2}" if args.smt2 else ""))
    return 0 if ok else 1
