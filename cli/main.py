"""The ``dirtyproof`` command line: ``designs``, ``run``, ``replay``, ``hunt``, ``prove``, ``check``.

Exit status (:mod:`.failure`): 0 all verdicts as expected, 1 a violation (or a verdict against
expectation), 2 bad input (one line on stderr, never a traceback), 3 an internal error (one line
and the file holding the traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

# Only the standard library at import time: the console script imports this module before
# main() installs the Ctrl-C handler, and a Ctrl-C during numpy's or Z3's import would end in
# a traceback. Everything else is imported inside the functions, after the handler is in place.
from .errors import UserError
from .failure import BAD_INPUT, EXIT_CODES_HELP, exit_status, say

# Verbs implemented in their own modules: each has add_arguments(parser) and run(args) -> int.
VERB_MODULES = {
    "hunt": ("dirtyproof.cli.hunt_cmd", "hunt a design for lost pages with Hypothesis"),
    "prove": ("dirtyproof.cli.prove_cmd", "prove designs safe with Z3, or find counterexamples"),
    "check": ("dirtyproof.cli.check_cmd", "prove and hunt the shipped designs: the main job"),
    "conform": ("dirtyproof.conform.cli", "run a real QEMU migration (or read one) and check it against the spec and the model"),
    "explore": ("dirtyproof.explore.cli", "explore every interleaving of a small world, as TLC does"),
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"dirtyproof: error: {message}\n")
        raise SystemExit(2)


def geometry_named(name: str, shift: int):
    """A named geometry (:func:`dirtyproof.impl.geometry.named`), bad names as bad input."""
    from dirtyproof.impl.geometry import named
    try:
        return named(name, shift)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def config_from_args(args):
    """The world's config from ``--config FILE`` and the flags that override it."""
    from dirtyproof.impl import Config
    from dirtyproof.proofs.runner import config_of, parse_config

    from .common import names_a_configuration

    data = {}
    text = getattr(args, "config", None)
    if text is not None and names_a_configuration(text):
        # KVM_MODE/GEOMETRY, the same --config as prove's
        try:
            data = config_of(*parse_config(text)).to_json()
        except ValueError as exc:
            raise UserError(f"{exc}; or give a JSON file of Config fields") from None
    elif text is not None:
        try:
            data = json.loads(Path(args.config).read_text())
        except FileNotFoundError:
            raise UserError(f"no such config file: {args.config}") from None
        except IsADirectoryError:
            raise UserError(f"config {args.config} is a folder, not a file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read config {args.config}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"config {args.config} is not JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(data, dict):
            raise UserError(f"config {args.config} must be a JSON object")
    try:
        cfg = Config.from_json(data)
        overrides = {}
        if getattr(args, "kvm_mode", None):
            overrides["kvm_mode"] = args.kvm_mode
        if getattr(args, "geometry", None):
            overrides["geometry"] = geometry_named(args.geometry, cfg.geometry.clear_bmap_shift)
        if getattr(args, "free_page_hinting", False):
            overrides["free_page_hinting"] = True
        if overrides:
            cfg = Config(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, **overrides})
    except ValueError as exc:
        raise UserError(f"bad config: {exc}") from None
    return cfg


def add_world_arguments(p: argparse.ArgumentParser) -> None:
    """Flags that shape the world: ``--config``, ``--kvm-mode``, ``--geometry``."""
    from dirtyproof.impl.config import ALL_KVM_MODES
    p.add_argument("--config", metavar="KVM_MODE/GEOMETRY|FILE",
                   help="the world: a configuration as prove names them (manual/mixed) or a JSON file "
                        "of Config fields")
    p.add_argument("--kvm-mode", choices=ALL_KVM_MODES,
                   help="KVM dirty-log mode (default: manual; dirty_ring: KVM's per-vCPU dirty rings)")
    p.add_argument("--geometry", choices=("mixed", "aligned", "unaligned"),
                   help="block layout (default: mixed)")
    p.add_argument("--free-page-hinting", action="store_true",
                   help="the guest hints free pages (virtio-balloon) and QEMU's precopy notifiers run (default: off)")


def cmd_designs(args) -> int:
    """List the designs, one line each."""
    from dirtyproof.impl.designs import DESIGNS
    for name, cls in DESIGNS.items():
        print(f"{name:14s} {cls.summary}")
    try:
        from dirtyproof.mutants import HINTING_MUTANTS, MULTIFD_MUTANTS, MUTANTS, RING_MUTANTS
        if args.mutants:
            for name, cls in MUTANTS.items():
                print(f"{name:28s} (corpus) {cls.summary}")
            for name, cls in HINTING_MUTANTS.items():
                print(f"{name:28s} (corpus, with --free-page-hinting) {cls.summary}")
            for name, cls in MULTIFD_MUTANTS.items():
                print(f"{name:28s} (corpus, with multifd_channels > 0) {cls.summary}")
            for name, cls in RING_MUTANTS.items():
                print(f"{name:28s} (corpus, with --kvm-mode dirty_ring) {cls.summary}")
    except ImportError:
        pass
    return 0


def print_result(res, design_name: str, log_tail: int = 12) -> None:
    """The summary of a run: counts, a verdict per invariant, the violation with its last steps."""
    print(f"design {design_name}: {res.steps} steps, {res.syncs} syncs, {res.pages_sent} pages sent, "
          f"{'completed' if res.completed else 'not completed'}")
    from dirtyproof.spec import BY_ID, RULE
    broken = {rv.rule for rv in res.rule_violations}
    warned = {wv.rule for wv in getattr(res, "warnings", ())}
    for inv_id in res.checked:
        verdict = ("VIOLATED" if res.violation is not None and res.violation.invariant == inv_id else
                   "broken (a rule)" if inv_id in broken else "warned" if inv_id in warned else "ok")
        inv = BY_ID.get(inv_id)
        if verdict == "ok" and res.lost_write is not None and res.lost_write.invariant == inv_id:
            verdict = "VIOLATED (shown by driving the run on to completion: the lost write below)"
        elif verdict == "ok" and inv is not None and inv.when == "completion" and not res.completed:
            verdict = "not checked (the run did not complete)"
        elif (verdict == "ok" and inv is not None and inv.kind == RULE
              and inv_id not in getattr(res, "rules_mattered", {inv_id})):
            # the condition's first clause: the rest is the reason, which `dirtyproof spec` prints
            when = inv.matters_when.split(": ")[0].split(" (")[0]
            verdict = f"never mattered (a rule, evaluated only {when})"
        print(f"  {inv_id:24s} {verdict}")
    if res.violation is not None and res.violation.invariant not in res.checked:
        print(f"  {res.violation.invariant:24s} VIOLATED")
    for rv in res.rule_violations:
        print(f"RULE {rv.rule} broken at step {rv.step}"
              f"{'' if rv.violation.page is None else f' page {rv.violation.page}'}: {rv.violation.message} "
              f"(a rule of QEMU's, not a verdict: no lost write shown by itself)")
    for wv in getattr(res, "warnings", ()):
        print(f"WARNING {wv.rule} at step {wv.step}: {wv.violation.message} (not a verdict; the "
              f"schedule that shows it is this run's steps 0-{wv.step}, which --trace saves)")
    if res.violation is not None:
        v = res.violation
        where = f" page {v.page}" if v.page is not None else ""
        print(f"VIOLATION of {v.invariant} at step {res.violation_step}{where}: {v.message}")
        if res.log:
            print("last steps:")
            for r in res.log[-log_tail:]:
                print(f"  #{r.index:<5d} {r.choice[0]:10s} {r.label}")
        if v.invariant == "coverage" and res.extension is not None:
            if res.lost_write is not None:
                print(f"lost write (driven on {len(res.extension)} steps to completion, no more writes): "
                      f"{res.lost_write.message}")
            else:
                print(f"lost write: none shown (driven on {len(res.extension)} steps with no more writes)")


class _Ticker:
    """A line on stderr about once a second after the first: ``run: 120000 steps, 3 s``."""

    def __init__(self, what: str) -> None:
        import time
        self.what, self.clock, self.n = what, time.perf_counter, 0
        self.next = self.clock() + 1.0

    def tick(self) -> None:
        self.n += 1
        if self.n % 1024 == 0 and self.clock() >= self.next:
            self.next += 1.0
            sys.stderr.write(f"{self.what}: {self.n} steps ...\n")


def with_progress(sched, what: str):
    """``sched`` (a RandomScheduler) reporting progress on stderr during long runs."""
    ticker = _Ticker(what)
    inner = sched.next_choice

    def next_choice(w):
        ticker.tick()
        return inner(w)
    sched.next_choice = next_choice
    return sched


def steps_with_progress(steps, what: str):
    """The choices of a trace, reporting progress on stderr during a long replay."""
    ticker = _Ticker(what)
    for s in steps:
        ticker.tick()
        yield s


def cmd_run(args) -> int:
    """Run one random schedule to completion with every invariant checked after every step."""
    from dirtyproof.impl.scheduler import RandomScheduler
    from dirtyproof.checked import run, replay
    from dirtyproof.impl.trace import Trace
    from dirtyproof.impl.world import World

    from .common import canonical_spec, design_class
    from .paths import output_file

    cls = design_class(args.design)
    cfg = config_from_args(args)
    output_file(args.trace, "--trace")
    w = World(cfg, cls)
    res = run(w, with_progress(RandomScheduler(args.seed, args.steps, cancels=args.cancels), "run"), extend=True)
    print_result(res, args.design)
    if args.trace:
        path = Trace.from_result(canonical_spec(args.design, cls), cfg, res, seed=args.seed).save(args.trace)
        print(f"trace saved to {path} (replay: dirtyproof replay {path})")
    return 0 if res.ok else 1


def cmd_replay(args) -> int:
    """Replay a saved trace and report whether it reproduces its recorded verdict."""
    from dirtyproof.impl.designs import DesignError
    from dirtyproof.checked import replay
    from dirtyproof.impl.trace import Trace, TraceError

    from .common import design_class
    try:
        trace = Trace.load(args.trace)
        cls = design_class(trace.design)
        _, res = replay(trace, cls, extend=True, progress=lambda steps: steps_with_progress(steps, "replay"))
    except (TraceError, DesignError) as exc:
        raise UserError(str(exc)) from None
    print_result(res, trace.design, log_tail=args.tail)
    if trace.violation is not None:
        recorded = trace.violation.get("invariant") if isinstance(trace.violation, dict) else None
        same = (res.violation is not None and res.violation.invariant == recorded) or any(
            rv.rule == recorded for rv in res.rule_violations)
        # "no completion after N steps" is the trace ending before completion: replayed, the
        # same choices end with the migration still not complete
        same |= recorded == "progress" and res.violation is None and not res.completed
        print(f"recorded violation {recorded} at step {trace.violation.get('step') if isinstance(trace.violation, dict) else '?'}: "
              f"{'reproduced' if same else 'NOT reproduced'}")
        return 1     # a violation, reproduced; or a trace that does not replay what it records
    return 0 if res.ok else 1


def cmd_spec(args) -> int:
    """Print the invariants as Markdown (the source of docs/invariants.md)."""
    from .docs import full_markdown
    from .paths import output_file

    out = output_file(args.output, "--output")
    text = full_markdown()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> Parser:
    """The argument parser with every verb."""
    from .common import positive_int
    p = Parser(prog="dirtyproof", description="Verification suite for QEMU's dirty-page bookkeeping.",
               epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    # every verb's --help ends with the exit statuses
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, epilog=EXIT_CODES_HELP,  # type: ignore[method-assign]
                                          formatter_class=argparse.RawDescriptionHelpFormatter, **k)
    sp = sub.add_parser("designs", help="list the designs")
    sp.add_argument("--mutants", action="store_true", help="also list the mutant corpus")
    sp.set_defaults(func=cmd_designs)
    sp = sub.add_parser("run", help="run one random schedule with every invariant checked")
    sp.add_argument("--design", default="legacy", help="design name, module:Class or path/to/file.py:Class")
    sp.add_argument("--seed", type=positive_int, default=0)
    sp.add_argument("--steps", type=positive_int, default=2000, help="free-running steps before switchover")
    sp.add_argument("--cancels", type=positive_int, default=1, help="at most this many cancel-and-restart")
    sp.add_argument("--trace", metavar="OUT.json", help="save the run as a replayable trace")
    add_world_arguments(sp)
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("spec", help="print the invariants as Markdown")
    sp.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    sp.set_defaults(func=cmd_spec)
    sp = sub.add_parser("replay", help="replay a saved trace")
    sp.add_argument("trace", metavar="TRACE.json")
    sp.add_argument("--tail", type=positive_int, default=20, help="steps to print before a violation")
    sp.set_defaults(func=cmd_replay)
    for verb, (module, help_text) in VERB_MODULES.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        sp = sub.add_parser(verb, help=help_text)
        mod.add_arguments(sp)
        sp.set_defaults(func=mod.run)
    p.verbs = list(sub.choices)
    return p


def check_environment() -> None:
    """The environment variables dirtyproof reads, validated before any work starts."""
    import os

    from dirtyproof.impl.bulk import bulk_path
    from dirtyproof.impl.watchdog import step_timeout

    try:
        step_timeout()
        if os.environ.get("DIRTYPROOF_BULK"):
            bulk_path()
    except ValueError as exc:
        raise UserError(f"{exc} (environment)") from None


def main(argv=None) -> int:
    """Entry point of the ``dirtyproof`` console script; also callable in-process with ``argv``.

    Returns the exit status (:mod:`.failure`) instead of raising: every exception becomes one line
    on stderr."""
    from .interrupt import ctrl_c_stops
    try:
        # the handler first: a Ctrl-C while the verbs' modules (numpy, Z3) load is exit 130 too
        with ctrl_c_stops():
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:          # --help (0) or a usage error (2, already printed)
                return exc.code if isinstance(exc.code, int) else BAD_INPUT
            if not getattr(args, "func", None):
                say("a verb is required: " + ", ".join(sorted(parser.verbs)) + " (dirtyproof --help)")
                return BAD_INPUT
            check_environment()
            if hasattr(args, "trace_dir"):
                # every verb that saves counterexamples (hunt, prove, check, explore) has its
                # folder checked here, before any work, in one place
                from .paths import trace_dir
                args.trace_dir = str(trace_dir(args))
            return args.func(args)
    except BaseException as exc:  # noqa: BLE001 - every exception is reported in one line
        if isinstance(exc, SystemExit):
            return exc.code if isinstance(exc.code, int) else BAD_INPUT
        return exit_status(exc)
    finally:
        watchdog = sys.modules.get("dirtyproof.impl.watchdog")
        if watchdog is not None:
            watchdog.disarm()       # no step runs any more: no step timer either


if __name__ == "__main__":
    raise SystemExit(main())
