"""``dirtyproof check``: prove and hunt the shipped designs (or the named one) and print one table
of verdicts against the recorded expectations; exit 0 iff everything matches.

Every design goes the same way, shipped, corpus mutant or a user's ``module:Class``: the prover
in each configuration (when the design has a per-page encoding; a user's own encoding passes the
conformance gate first), seeded random runs in each configuration, the counting lemmas, and a
hunt, and the explorer (its whole default bound for one design, its ``threads`` entry for several,
unless ``--explore-bound`` says; in worker processes alongside). The table says which engine judged what; ``--junit`` and ``--json`` write the same results
for CI systems (:mod:`.reports`)."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from .common import design_class, design_specs
from .errors import UserError
from .interrupt import worker_ignores_sigint
from .judges import CHECK_EXAMPLES, CHECK_SCHEDULES, RUN_SEEDS, RUN_STEPS, HuntBudget, explore_job, tail_job
from .paths import add_trace_dir_argument, output_file, trace_dir
from .reports import Row, write_json, write_junit

LEGEND = f"""legend:
  prover    Z3 proof of the per-page encoding in that configuration: safe, unsafe (with a trace),
            unknown, n/a (the design has no per-page encoding), mismatch (its own encoding does
            not conform to the design: nothing proved)
  runs      {RUN_SEEDS} seeded random runs of {RUN_STEPS} steps in that configuration, every invariant after every step
  counting  the counting lemmas against the design's counters (all sizes)
  hunt      swarm schedules, then the Hypothesis machine, over all configurations, from seed 0: a
            fixed amount of work (--hunt-schedules, default {CHECK_SCHEDULES}; --hunt-examples, default
            {CHECK_EXAMPLES}), so the same verdict and counterexample every run; or --hunt-budget
            seconds of wall time instead (how far it gets depends on the machine's load)
  explore   every interleaving within the explorer's bound (--explore-bound: by default the whole
            default bound for one design, its threads entry for several; explore/portfolio.py: each run's
            world, bounds and KVM mode in docs/explore.md), stopped at the first violation: safe
            (exhaustive within those bounds, not for all sizes), unsafe (the cheapest
            counterexample, a trace) or cut; expected: the manifest's "explore" entry, else safe
  verdict   the design's verdict over every engine: unsafe if any engine found a violation
  expected  the manifest (mutants/manifest.json: shipped designs per configuration, corpus mutants
            overall), else safe;
            "any" where an engine's verdict is not compared; match: yes, or NO"""


def add_arguments(p) -> None:
    """Flags of ``check``."""
    p.add_argument("--design", help="design name, module:Class or path/to/file.py:Class (default: every shipped design)")
    p.add_argument("--jobs", type=int, default=2, help="processes for the proofs (default 2)")
    add_trace_dir_argument(p)
    p.add_argument("--hunt-schedules", metavar="N",
                   help=f"sweep schedules of each design's hunt (a whole number >= 1; default {CHECK_SCHEDULES})")
    p.add_argument("--hunt-examples", metavar="M",
                   help=f"Hypothesis machine examples of each design's hunt (a whole number >= 1; default "
                        f"{CHECK_EXAMPLES})")
    p.add_argument("--hunt-budget", type=float, metavar="S",
                   help="instead of the work flags: S seconds of wall-clock hunting per design (> 0); how far "
                        "the hunt gets, and so its verdict, depends on the machine's load")
    p.add_argument("--explore-bound", choices=("threads", "default", "deep"),
                   help="the explorer's bound: threads (every interleaving of the threads, no write, "
                        "clock move or cancel; the default for several designs), default (the "
                        "explorer's whole default bound, 12-73 s of CPU per shipped design; the default "
                        "for one design) or deep (the default bound, then two writes and two clock moves "
                        "on one page: background-v1's loss; up to 7 minutes more per design); also "
                        "$DIRTYPROOF_EXPLORE_BOUND")
    p.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def _prove_one(job):
    """One proof in a worker: a plain dict (picklable), errors classified here where their
    traceback is."""
    spec, cfg, traces = job
    t0 = time.perf_counter()
    out = {"kind": "prove", "spec": spec, "config": cfg, "verdict": "unknown", "detail": "", "seconds": 0.0, "trace": None,
           "error": None}
    try:
        from pathlib import Path

        from dirtyproof.checked import resolve
        from dirtyproof.proofs.registry import NoEncoding
        from dirtyproof.proofs.runner import EncodingBug, EncodingMismatch, prove_config
        from dirtyproof.proofs.solver import QueryRunner
        cls = resolve(spec)
        try:
            from dirtyproof.mutants import MUTANTS
        except ImportError:
            MUTANTS = {}
        try:
            # a corpus mutant's concrete counterexample is the hunter's: the prover stops at the
            # Z3-confirmed abstract one (as prove does)
            res = prove_config(spec, cls, cfg, QueryRunner(), Path(traces), replay=MUTANTS.get(spec) is not cls)
        except NoEncoding as exc:
            out.update(verdict="n/a", detail=f"no per-page encoding: {exc}")
        except EncodingMismatch as exc:
            out.update(verdict="mismatch", detail=str(exc))
        except EncodingBug as exc:
            out.update(verdict="encoding-bug", detail=str(exc))
        else:
            out["verdict"] = res.verdict
            if res.concrete is not None and res.concrete.path:
                out["trace"] = str(res.concrete.path)
                c = res.concrete
                out["detail"] = (f"{c.invariant} on page {c.page} at step {c.violation_step}; last steps: "
                                 + " / ".join(f"{ch[0]} {label}" for ch, label in c.steps[-8:]))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - classified here, reported by the parent
        from .failure import classify
        out["error"] = classify(exc)
    out["seconds"] = time.perf_counter() - t0
    return out


def _work_one(job):
    """One job of the work pool: a proof ``("prove", spec, config, traces)`` or a design's other
    engines ``("tail", spec, budget, traces)`` (:func:`.judges.tail_job`)."""
    if job[0] == "prove":
        return _prove_one(job[1:])
    return tail_job(job[1:])


def _work_all(jobs: list, processes: int) -> dict:
    """Run the proofs and every design's runs, counting lemmas and hunt, on ``processes`` worker
    processes, printing progress on stderr; ``{("prove", spec, config) or ("tail", spec): result}``."""
    from .failure import Reported

    total, done, results = len(jobs), 0, {}
    t0 = time.perf_counter()

    def finished(r) -> None:
        nonlocal done
        done += 1
        if r["error"] is not None:
            raise Reported(*r["error"])
        if r["kind"] == "prove":
            results[("prove", r["spec"], r["config"])] = r
            sys.stderr.write(f"check: [{done}/{total}] prover {r['spec']} {r['config']}: {r['verdict']} "
                             f"({r['seconds']:.1f} s)\n")
        else:
            results[("tail", r["spec"])] = r
            bad = [f"{c}: {x['verdict']}" for c, x in r["runs"].items() if x["verdict"] != "ok"]
            secs = sum(x["seconds"] for x in r["runs"].values()) + r["counting"]["seconds"] + r["hunt"]["seconds"]
            sys.stderr.write(f"check: [{done}/{total}] runs, counting lemmas and hunt {r['spec']}: runs "
                             f"{'ok' if not bad else bad[0]}, counting {r['counting']['verdict']}, hunt "
                             f"{r['hunt']['verdict']} after {r['hunt']['schedules']} schedules + {r['hunt']['examples']} examples "
                             f"({secs:.1f} s)\n")

    if processes == 1:
        for j in jobs:
            sys.stderr.write(f"check: {'proving' if j[0] == 'prove' else 'runs, counting lemmas and hunt'} "
                             f"{' '.join(map(str, j[1:3])) if j[0] == 'prove' else j[1]} ...\n")
            finished(_work_one(j))
        return results
    ex = ProcessPoolExecutor(processes, initializer=worker_ignores_sigint)
    try:
        pending = {ex.submit(_work_one, j) for j in jobs}
        last = time.perf_counter()
        while pending:
            ready, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for f in ready:
                finished(f.result())
            if not ready and time.perf_counter() - last >= 2.0:
                last = time.perf_counter()
                sys.stderr.write(f"check: proving, running and hunting, {done}/{total} done, {last - t0:.0f} s\n")
    except BaseException:
        # Ctrl-C or a failed job: stop the workers now rather than wait for their queries
        stop_pool(ex)
        raise
    ex.shutdown(wait=True)
    return results


def _expectations(spec: str, cls, expected: dict):
    """(per-config prover expectation or None for "any", the design's overall expectation)."""
    from dirtyproof.proofs.runner import CONFIGS
    try:
        from dirtyproof.mutants import MUTANTS, load_manifest
    except ImportError:
        MUTANTS = {}
    if MUTANTS.get(spec) is cls:
        return {c: None for c in CONFIGS}, load_manifest()["mutants"][spec]["verdict"]
    per = {c: expected.get(spec, {}).get(c, "safe") for c in CONFIGS}
    return per, ("unsafe" if "unsafe" in per.values() else "safe")


def stop_pool(ex) -> None:
    """Stop a process pool at once: terminate its workers, cancel what is queued, and let its
    manager thread see them gone (up to 0.5 s) before the interpreter's exit hook wakes it: with
    two pools stopped together, CPython 3.11's exit hook could write to a wakeup pipe the manager
    thread was closing and print an ``OSError`` traceback after dirtyproof's own line."""
    import concurrent.futures.process as cfp

    for proc in list((getattr(ex, "_processes", None) or {}).values()):
        proc.terminate()
    ex.shutdown(wait=False, cancel_futures=True)
    manager = getattr(ex, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(0.5)
        if not manager.is_alive():
            getattr(cfp, "_threads_wakeups", {}).pop(manager, None)


class _Explorations:
    """The explorer's runs of every design, in worker processes started before the proofs (they
    fill the cores the serial runs and hunts leave idle) or, with ``start=False``, when
    :meth:`start` is called (after wall-clock hunts); :meth:`row` waits for one design's."""

    def __init__(self, specs: list, traces, processes: int, start: bool = True) -> None:
        self.ex = ProcessPoolExecutor(max(1, processes), initializer=worker_ignores_sigint)
        self.specs, self.traces = specs, traces
        self.futures: dict = {}
        if start:
            self.start()

    def start(self) -> None:
        """Submit every run of every design (once)."""
        if self.futures:
            return
        self.t0 = time.perf_counter()
        from dirtyproof.explore.run import portfolio_runs
        labels = [r[0] for r in portfolio_runs()]
        # every run of every design at once, the big designs' runs spreading over the processes
        self.futures = {s: [self.ex.submit(explore_job, (s, str(self.traces), label)) for label in labels]
                        for s in self.specs}

    def row(self, spec: str, cls) -> Row:
        """The ``explore`` row of ``spec``: its judgement against the manifest's expectation."""
        from dirtyproof.explore.portfolio import chosen_bound
        from dirtyproof.explore.verdict import Judgement, RunSummary, combine, expected_within, matches
        from .failure import Reported
        parts = []
        for f in self.futures[spec]:
            while True:
                try:
                    r = f.result(timeout=2.0)
                    break
                except TimeoutError:
                    sys.stderr.write(f"check: exploring {spec}, {time.perf_counter() - self.t0:.0f} s\n")
            if r["error"] is not None:
                raise Reported(*r["error"])
            d = r["judgement"]
            parts.append(Judgement(**{**d, "runs": [RunSummary(**x) for x in d["runs"]]}))
            if parts[-1].verdict == "unsafe":
                for rest in self.futures[spec][len(parts):]:
                    rest.cancel()      # not needed: the first violation in the portfolio's order decides
                break
        j = combine(parts)
        bound = chosen_bound()
        want = expected_within(spec, cls, bound)
        ok, why = matches(j, want)
        got = j.verdict if j.invariant is None else f"unsafe ({j.invariant}, {j.steps} steps)"
        detail = j.detail() + (f"\n{why}" if why else "")
        sys.stderr.write(f"check: explorer {spec}: {got} ({j.seconds:.1f} s)\n")
        return Row(spec, "explore", f"{bound} bound", want["verdict"], got, ok, j.seconds, detail, j.trace)

    def stop(self) -> None:
        """Stop the workers now (Ctrl-C or a failure elsewhere)."""
        stop_pool(self.ex)


def _judge(spec: str, cls, by: dict, expected: dict, explorations=None) -> list[Row]:
    """Every engine's rows for one design, from the work pool's results ``by`` (and the
    explorer's), with match decided."""
    from dirtyproof.proofs.runner import CONFIGS

    per, overall = _expectations(spec, cls, expected)
    tail = by[("tail", spec)]
    rows: list[Row] = []
    found_unsafe = False
    for cfg in CONFIGS:
        r = by[("prove", spec, cfg)]
        want = per[cfg]
        runs, rsec = tail["runs"][cfg]["verdict"], tail["runs"][cfg]["seconds"]
        v = r["verdict"]
        found_unsafe |= v == "unsafe" or runs != "ok"
        if want is None:
            ok = v in ("safe", "unsafe", "n/a")
        else:
            ok = v == want or v == "n/a"
        ok &= not (v == "safe" and runs != "ok")          # a proof the runs refute is wrong
        rows.append(Row(spec, "prover", cfg, want or "any", v, ok, r["seconds"], r["detail"], r["trace"]))
        run_want = "ok" if want == "safe" else "any"
        rows.append(Row(spec, "runs", cfg, run_want, runs, runs == "ok" or run_want == "any", rsec,
                        "" if runs == "ok" else runs))
    c = tail["counting"]
    counting, why, csec = c["verdict"], c["why"], c["seconds"]
    found_unsafe |= counting == "unsafe"
    cwant = "any" if per[CONFIGS[0]] is None else "safe"
    from dirtyproof.impl.designs import DESIGNS
    shipped = DESIGNS.get(spec) is cls
    if counting == "unknown" and not shipped and cwant == "safe":
        # the lemmas do not cover a user's counters: not a verdict (the runs and the hunt check
        # the counters after every step); a shipped design must be covered
        ok_counting = True
        why = why or "the counting lemmas do not cover this design's counters; the runs and the hunt check them"
    else:
        ok_counting = counting == cwant or (cwant == "any" and counting != "unknown")
    rows.append(Row(spec, "counting", "all sizes", cwant, counting, ok_counting, csec, why))
    hr = tail["hunt"]
    h, detail, trace, hsec = hr["verdict"], hr["detail"], hr["trace"], hr["seconds"]
    found_unsafe |= h == "unsafe"
    if explorations is not None:
        er = explorations.row(spec, cls)
        rows.append(er)
        found_unsafe |= er.got.startswith("unsafe")
    found = "unsafe" if found_unsafe else "safe"
    # a short hunt may miss a bug another engine found; it must not find one where none is expected
    rows.append(Row(spec, "hunt", "all configs", overall, h,
                    h == overall or (h == "safe" and overall == "unsafe" and found == "unsafe"),
                    hsec, detail, trace))
    rows.append(Row(spec, "verdict", "all engines", overall, found, found == overall, 0.0,
                    "" if found == overall else f"the engines together say {found}, expected {overall}"))
    return rows


def print_table(rows: list[Row]) -> None:
    """The table of verdicts: one line per design and configuration (prover and runs), then the
    counting lemmas, the hunt and the overall verdict; columns sized to the longest design name."""
    dw = max([len("design")] + [len(r.design) for r in rows])
    print(f"{'design':{dw}s}  {'engine':8s} {'config':22s} {'expected':9s} {'prover':12s} {'runs':34s} "
          f"{'time':>7s}  match")
    by = {}
    for r in rows:
        by.setdefault((r.design, r.config), {})[r.engine] = r
    for (design, config), eng in by.items():
        if "prover" in eng:
            p, ru = eng["prover"], eng["runs"]
            ok = p.ok and ru.ok
            print(f"{design:{dw}s}  {'prover':8s} {config:22s} {p.expected:9s} {p.got:12s} {ru.got:34s} "
                  f"{p.seconds + ru.seconds:6.1f}s  {'yes' if ok else 'NO'}")
            if p.detail and not p.ok:
                print(f"{'':{dw}s}    {p.detail[:400]}")
            if p.trace:
                print(f"{'':{dw}s}    counterexample trace: {p.trace}")
            continue
        for name, r in eng.items():
            got = r.got if name not in ("hunt", "explore") else ""
            runs = r.got if name in ("hunt", "explore") else ""
            print(f"{design:{dw}s}  {name:8s} {config:22s} {r.expected:9s} {got:12s} {runs:34s} "
                  f"{r.seconds:6.1f}s  {'yes' if r.ok else 'NO'}")
            if r.detail and (not r.ok or name in ("counting", "explore")):
                print("\n".join(f"{'':{dw}s}    {line}" for line in clip_lines(r.detail.splitlines())))
            if r.trace and (not r.ok or name == "explore"):
                print(f"{'':{dw}s}    counterexample trace: {r.trace}")


# A detail longer than DETAIL_HEAD + DETAIL_TAIL lines (a long counterexample's step list) is shown
# by its head (the verdict, the world, the first steps) and its tail (the last steps, where a race
# ends, then the lost write and the trace to replay): cutting the tail would hide what matters.
DETAIL_HEAD = 14
DETAIL_TAIL = 26


def clip_lines(lines: list[str], head: int = DETAIL_HEAD, tail: int = DETAIL_TAIL) -> list[str]:
    """``lines`` whole when short, else their first ``head`` and last ``tail`` with one line
    saying how many were left out in between."""
    if len(lines) <= head + tail + 1:
        return lines
    return [*lines[:head], f"  ... {len(lines) - head - tail} lines left out (the whole list: replay the trace) ...",
            *lines[-tail:]]


def _work_count(text, flag: str, what: str) -> int | None:
    """``text`` (a flag's value, or ``None`` when not given) as a whole number >= 1; a
    :class:`UserError` otherwise (0 is refused: a hunt without that work would check less than it
    says, and 0 of both would pass vacuously)."""
    if text is None:
        return None
    try:
        n = int(text.strip())
    except ValueError:
        raise UserError(f"{flag} must be a whole number of {what} >= 1, not {text!r}") from None
    if n < 1:
        raise UserError(f"{flag} must be a whole number of {what} >= 1, not {n} "
                        f"(a hunt without {what} checks less than it says; none of either would pass vacuously)")
    return n


def hunt_budget(args) -> HuntBudget:
    """The hunt's budget from the flags: the work (``--hunt-schedules``, ``--hunt-examples``; the
    defaults :data:`.judges.CHECK_SCHEDULES` and :data:`.judges.CHECK_EXAMPLES`), or the wall clock
    (``--hunt-budget``, only alone: with a work flag the budget would have two meanings, bad input)."""
    schedules = _work_count(getattr(args, "hunt_schedules", None), "--hunt-schedules", "schedules")
    examples = _work_count(getattr(args, "hunt_examples", None), "--hunt-examples", "examples")
    seconds = getattr(args, "hunt_budget", None)
    if seconds is not None:
        if schedules is not None or examples is not None:
            raise UserError("--hunt-budget (seconds) cannot be given with --hunt-schedules or --hunt-examples "
                            "(work): choose one budget")
        if not (math.isfinite(seconds) and seconds > 0):
            raise UserError(f"--hunt-budget must be a positive number of seconds, not {seconds:g} "
                            "(a hunt of no time would pass vacuously)")
        return HuntBudget(seconds=seconds)
    return HuntBudget(schedules=CHECK_SCHEDULES if schedules is None else schedules,
                      examples=CHECK_EXAMPLES if examples is None else examples)


def run(args) -> int:
    """The table; exit 0 iff every engine's verdict matches its expectation."""
    from dirtyproof.proofs.runner import CONFIGS, expected_verdicts

    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    budget = hunt_budget(args)
    specs = design_specs(args.design)
    classes = {s: design_class(s) for s in specs}
    traces = trace_dir(args)
    junit = output_file(args.junit, "--junit")
    json_out = output_file(args.json, "--json")
    expected = expected_verdicts()
    from dirtyproof.explore.portfolio import apply_bound_flag, chosen_bound, gate_default
    try:
        # before any work, workers inherit it; one design gets the whole default bound
        apply_bound_flag(getattr(args, "explore_bound", None), gate_default(len(specs)))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    t0 = time.perf_counter()
    # a hunt of S seconds of wall time gets what the cores give it: the explorer's processes would
    # take half of them, so with --hunt-budget they start once the hunts are done (a work budget
    # is the same work either way, so then they run alongside)
    deferred = budget.seconds is not None
    when = "after the hunts (a wall-clock hunt budget)" if deferred else "meanwhile"
    sys.stderr.write(f"check: {len(specs)} design(s) x {len(CONFIGS)} configurations: proving, random runs, "
                     f"counting lemmas and {budget.describe()} each on {args.jobs} process(es); the explorer's "
                     f"{chosen_bound()} bound on {args.jobs} more process(es) {when}\n")
    # longest first: the proofs that search for counterexamples, then every design's runs and
    # hunt (seconds each), then the proofs expected safe (about a second each), so that the last
    # jobs are short and no process idles while another finishes a long one
    proofs = [("prove", s, c, str(traces)) for s in specs for c in CONFIGS]
    proofs.sort(key=lambda j: expected.get(j[1], {}).get(j[2], "safe") != "unsafe")
    unsafe = [j for j in proofs if expected.get(j[1], {}).get(j[2], "safe") == "unsafe"]
    jobs = unsafe + [("tail", s, budget, str(traces)) for s in specs] + proofs[len(unsafe):]
    explorations = _Explorations(specs, traces, args.jobs, start=not deferred)
    try:
        by = _work_all(jobs, args.jobs)
        explorations.start()
        rows: list[Row] = []
        for spec in specs:
            rows += _judge(spec, classes[spec], by, expected, explorations)
    except BaseException:
        explorations.stop()
        raise
    explorations.ex.shutdown(wait=True)
    for spec in specs:
        if by[("prove", spec, CONFIGS[0])]["verdict"] == "n/a":
            print(f"{spec}: no per-page encoding: judged by the random runs, the counting lemmas, the hunt and the explorer")
    print_table(rows)
    said = f"{budget.describe()} each, from seed 0"
    print(f"hunt budget: {said}")
    print(LEGEND)
    ok = all(r.ok for r in rows)
    secs = time.perf_counter() - t0
    if junit is not None:
        write_junit(rows, junit, secs, said)
    if json_out is not None:
        write_json(rows, json_out, secs, ok, asdict(budget))
    print(f"check: {'all verdicts as expected' if ok else 'MISMATCH'} in {secs:.1f} s"
          + (f"; JUnit XML in {junit}" if junit else "") + (f"; JSON in {json_out}" if json_out else ""))
    return 0 if ok else 1
