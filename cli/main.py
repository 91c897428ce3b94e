"""The ``dirtyproof`` command line: ``designs``, ``run``, ``replay``, ``hunt``, ``prove``, ``check``.

Exit status: 0 all verdicts as expected, 1 a violation (or a verdict against expectation),
2 bad input (one line on stderr, never a traceback).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from dirtyproof.impl import Config, Geometry
from dirtyproof.impl.config import KVM_MODES
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.impl.scheduler import DesignCrash

from .common import design_class, positive_int
from .errors import UserError

# Verbs implemented in their own modules: each has add_arguments(parser) and run(args) -> int.
VERB_MODULES = {
    "hunt": ("dirtyproof.cli.hunt_cmd", "hunt a design for lost pages with Hypothesis"),
    "prove": ("dirtyproof.cli.prove_cmd", "prove designs safe with Z3, or find counterexamples"),
    "check": ("dirtyproof.cli.check_cmd", "prove and hunt the shipped designs: the main job"),
    "explore": ("dirtyproof.explore.cli", "explore every interleaving of a small world, as TLC does"),
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"dirtyproof: error: {message}\n")
        raise SystemExit(2)


def geometry_named(name: str, shift: int) -> Geometry:
    """``mixed`` (aligned and unaligned blocks, two slots in one) or ``aligned`` (fast path only)."""
    if name == "mixed":
        return Geometry.simple(aligned=1, unaligned=1, pages=64, shift=shift)
    if name == "aligned":
        return Geometry.simple(aligned=2, unaligned=0, pages=64, shift=shift)
    if name == "unaligned":
        return Geometry.simple(aligned=0, unaligned=2, pages=64, shift=shift)
    raise UserError(f"unknown geometry {name!r} (mixed, aligned, unaligned)")


def config_from_args(args) -> Config:
    """The world's config from ``--config FILE`` and the flags that override it."""
    data = {}
    if getattr(args, "config", None):
        try:
            data = json.loads(Path(args.config).read_text())
        except FileNotFoundError:
            raise UserError(f"no such config file: {args.config}") from None
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
        if overrides:
            cfg = Config(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, **overrides})
    except ValueError as exc:
        raise UserError(f"bad config: {exc}") from None
    return cfg


def add_world_arguments(p: argparse.ArgumentParser) -> None:
    """Flags that shape the world: ``--config``, ``--kvm-mode``, ``--geometry``."""
    p.add_argument("--config", metavar="FILE", help="JSON file of Config fields")
    p.add_argument("--kvm-mode", choices=KVM_MODES, help="KVM dirty-log mode (default: manual)")
    p.add_argument("--geometry", choices=("mixed", "aligned", "unaligned"),
                   help="block layout (default: mixed)")


def cmd_designs(args) -> int:
    """List the designs, one line each."""
    for name, cls in DESIGNS.items():
        print(f"{name:14s} {cls.summary}")
    try:
        from dirtyproof.mutants import MUTANTS
        if args.mutants:
            for name, cls in MUTANTS.items():
                print(f"{name:28s} (mutant) {cls.summary}")
    except ImportError:
        pass
    return 0


def print_result(res, design_name: str, log_tail: int = 12) -> None:
    """The summary of a run: counts, a verdict per invariant, the violation with its last steps."""
    print(f"design {design_name}: {res.steps} steps, {res.syncs} syncs, {res.pages_sent} pages sent, "
          f"{'completed' if res.completed else 'not completed'}")
    for inv_id in res.checked:
        verdict = "VIOLATED" if res.violation is not None and res.violation.invariant == inv_id else "ok"
        print(f"  {inv_id:24s} {verdict}")
    if res.violation is not None and res.violation.invariant not in res.checked:
        print(f"  {res.violation.invariant:24s} VIOLATED")
    if res.violation is not None:
        v = res.violation
        where = f" page {v.page}" if v.page is not None else ""
        print(f"VIOLATION of {v.invariant} at step {res.violation_step}{where}: {v.message}")
        if res.log:
            print("last steps:")
            for r in res.log[-log_tail:]:
                print(f"  #{r.index:<5d} {r.choice[0]:10s} {r.label}")


def cmd_run(args) -> int:
    """Run one random schedule to completion with every invariant checked after every step."""
    from dirtyproof.impl.scheduler import RandomScheduler, run
    from dirtyproof.impl.trace import Trace
    from dirtyproof.impl.world import World

    cls = design_class(args.design)
    cfg = config_from_args(args)
    w = World(cfg, cls)
    res = run(w, RandomScheduler(args.seed, args.steps, cancels=args.cancels))
    print_result(res, args.design)
    if args.trace:
        path = Trace.from_result(args.design, cfg, res, seed=args.seed).save(args.trace)
        print(f"trace saved to {path} (replay: dirtyproof replay {path})")
    return 0 if res.ok else 1


def cmd_replay(args) -> int:
    """Replay a saved trace and report whether it reproduces its recorded verdict."""
    from dirtyproof.impl.designs import DesignError
    from dirtyproof.impl.trace import Trace, TraceError

    try:
        trace = Trace.load(args.trace)
        cls = design_class(trace.design)
        _, res = trace.replay(cls)
    except (TraceError, DesignError) as exc:
        raise UserError(str(exc)) from None
    print_result(res, trace.design, log_tail=args.tail)
    if trace.violation is not None:
        same = res.violation is not None and res.violation.invariant == trace.violation.get("invariant")
        print(f"recorded violation {trace.violation.get('invariant')} at step {trace.violation.get('step')}: "
              f"{'reproduced' if same else 'NOT reproduced'}")
    return 0 if res.ok else 1


def cmd_spec(args) -> int:
    """Print the invariants as Markdown (the source of docs/invariants.md)."""
    from dirtyproof.spec.docs import invariants_markdown
    text = invariants_markdown()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> Parser:
    """The argument parser with every verb."""
    p = Parser(prog="dirtyproof", description="Verification suite for QEMU's dirty-page bookkeeping.")
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    sp = sub.add_parser("designs", help="list the designs")
    sp.add_argument("--mutants", action="store_true", help="also list the mutant corpus")
    sp.set_defaults(func=cmd_designs)
    sp = sub.add_parser("run", help="run one random schedule with every invariant checked")
    sp.add_argument("--design", default="legacy", help="design name or module:Class")
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
    return p


def main(argv=None) -> int:
    """Entry point of the ``dirtyproof`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UserError as exc:
        sys.stderr.write(f"dirtyproof: error: {exc}\n")
        return 2
    except DesignCrash as exc:
        sys.stderr.write(f"dirtyproof: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("dirtyproof: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
