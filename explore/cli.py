"""``dirtyproof explore``: exhaustive exploration of a small world, for any design.

Exit 0 when no violation exists within the bounds (every KVM mode asked for), 1 on a violation
(or when a bound cut the search short, so nothing was shown exhaustively), 2 on bad input.
"""
from __future__ import annotations

import sys
from pathlib import Path

from dirtyproof.cli.common import canonical_spec, design_class, names_a_configuration, positive_int
from dirtyproof.cli.errors import UserError
from dirtyproof.cli.failure import Reported
from dirtyproof.impl.config import ALL_KVM_MODES, KVM_MODES

from .bounds import Bounds
from .engine import ORDERS
from .reductions import Reductions
from .portfolio import BOUND_ENV, chosen_bound, describe, gate_portfolio
from .parallel import RunJob, ordered_outcomes
from .run import config_for, portfolio_runs


def add_arguments(p) -> None:
    """The explore verb's flags: the design, the world, each bound, the reductions."""
    d = Bounds()
    p.add_argument("--design", default="legacy", metavar="NAME|module:Class",
                   help="a shipped design, a mutant of the corpus or a user class (default: legacy)")
    p.add_argument("--kvm-mode", choices=ALL_KVM_MODES, action="append",
                   help="KVM dirty-log mode; repeat for several (default: every mode but dirty_ring, "
                        "which runs where it is asked for)")
    p.add_argument("--config", metavar="KVM_MODE/GEOMETRY|FILE", help="the explored world, as for run: a "
                   "configuration as prove names them (manual/mixed: that mode unless --kvm-mode) or a "
                   "JSON file of Config fields "
                   "(default: the explorer's small world, docs/explore.md)")
    # without any bound flag and --config, the default bound: the portfolio (explore/portfolio.py);
    # with some, one world, the flags not given taking Bounds()'s values
    p.add_argument("--guest-writes", type=positive_int, default=None, help=f"vCPU writes per path (default {d.guest_writes})")
    p.add_argument("--device-writes", type=positive_int, default=None, help=f"device writes per path (default {d.device_writes})")
    p.add_argument("--clock-moves", type=positive_int, default=None,
                   help=f"clock moves per path (default {d.clock_moves}; moves to a wake-up when every thread sleeps are free)")
    p.add_argument("--cancels", type=positive_int, default=None, help=f"cancel-and-restart per path (default {d.cancels})")
    p.add_argument("--moves", type=positive_int, default=None,
                   help=f"writes, clock moves and cancels per path, all together (default {d.moves})")
    p.add_argument("--max-depth", type=positive_int, default=None, help=f"longest path explored (default {d.max_depth})")
    p.add_argument("--max-states", type=positive_int, default=None, help=f"stop after this many distinct states (default {d.max_states})")
    p.add_argument("--preemptions", type=positive_int, default=None,
                   help="switches away from a thread that could go on, per path (default: any number)")
    p.add_argument("--wakeup-preemption", action="store_true", default=None,
                   help="with --preemptions: a switch to a thread that has not stepped since it was made "
                        "runnable (started, woken, unblocked) is free")
    p.add_argument("--no-por", action="store_true", help="turn the partial-order reduction off")
    p.add_argument("--no-subsumption", action="store_true", help="turn budget subsumption off")
    p.add_argument("--all-deadlines", action="store_true",
                   help="clock moves to 1 ms past every reference time plus every period of the config, "
                        "not only those the design's code reads")
    p.add_argument("--order", choices=ORDERS, default="moves",
                   help="expansion order: by moves spent then depth (default), or plain breadth-first")
    p.add_argument("--trace-dir", metavar="DIR", help="where a counterexample trace goes "
                   "(default: $DIRTYPROOF_TRACE_DIR or .dirtyproof/traces)")
    p.add_argument("--quiet", action="store_true", help="no step list, only the summary")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes running the runs at once, output and verdict as in order "
                        f"(default: the machine's cores, {default_jobs()} here)")


def default_jobs() -> int:
    """The machine's cores this process may use."""
    import os
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


BOUND_FLAGS = ("guest_writes", "device_writes", "clock_moves", "cancels", "moves", "max_depth", "max_states",
               "preemptions", "wakeup_preemption")


def single_world(args) -> bool:
    """Whether the flags ask for one world and bound (a bound flag or ``--config``) rather than the
    default portfolio."""
    return args.config is not None or any(getattr(args, f) is not None for f in BOUND_FLAGS)


def bounds_from_args(args) -> Bounds:
    """The :class:`Bounds` the flags ask for (a flag not given takes ``Bounds()``'s value); a bound
    that explores nothing is bad input."""
    d = Bounds()
    given = {f: getattr(args, f) for f in BOUND_FLAGS}
    vals = {f: (getattr(d, f) if v is None else v) for f, v in given.items()}
    vals["preemptions"] = given["preemptions"]
    vals["wakeup_preemption"] = bool(given["wakeup_preemption"])
    if vals["wakeup_preemption"] and vals["preemptions"] is None:
        raise UserError("--wakeup-preemption needs --preemptions N (without a bound every switch is free already)")
    for flag in ("max_depth", "max_states"):
        if vals[flag] < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1 (a bound of {vals[flag]} explores nothing)")
    try:
        return Bounds(**vals)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _config_file(path: str):
    """The Config of ``--config`` (the explored world): ``KVM_MODE/GEOMETRY`` as ``run`` and
    ``prove`` name configurations, or a JSON file of Config fields; :class:`UserError` in one
    line otherwise."""
    import json

    from dirtyproof.impl.config import Config
    if names_a_configuration(path):
        from dirtyproof.proofs.runner import config_of, parse_config
        try:
            return config_of(*parse_config(path))
        except ValueError as exc:
            raise UserError(f"{exc}; or give a JSON file of Config fields") from None
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise UserError(f"config {path} must be a JSON object of Config fields")
        return Config.from_json(data)
    except FileNotFoundError:
        raise UserError(f"no such config file: {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"config {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    except IsADirectoryError:
        raise UserError(f"config {path} is a folder, not a file") from None
    except UnicodeDecodeError:
        raise UserError(f"config {path} is not text") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UserError(f"bad config {path}: {exc}") from None


def run(args) -> int:
    """Explore the design: the default portfolio, or one world within the bounds the flags give,
    in every KVM mode asked for; print TLC-style summaries."""
    cls = design_class(args.design)
    red = Reductions(por=not args.no_por, subsumption=not args.no_subsumption, deadlines=not args.all_deadlines)
    if single_world(args):
        bounds = bounds_from_args(args)
        base = _config_file(args.config) if args.config else None
        named = args.config is not None and names_a_configuration(args.config)
        # a named configuration, or a world file in a mode the default list lacks (dirty_ring),
        # is explored in its own mode
        own = named or (base is not None and base.kvm_mode not in KVM_MODES)
        modes = args.kvm_mode or ([base.kvm_mode] if own else list(KVM_MODES))
        runs = [(mode, config_for(mode, base), bounds) for mode in modes]
    else:
        try:
            bound = chosen_bound()
        except ValueError as exc:
            raise UserError(str(exc)) from None
        entries = gate_portfolio()
        print(f"{bound} bound (explore/portfolio.py{'' if bound == 'default' else ', $' + BOUND_ENV}; "
              "a bound flag or --config explores one world instead):")
        for line in describe(entries):
            print(f"  {line}")
        runs = [r for r in portfolio_runs(entries) if not args.kvm_mode or r[1].kvm_mode in args.kvm_mode]
        # a mode the portfolio does not list by default (dirty_ring) runs each entry's world in it
        runs += [(f"{e.name}/{m}", e.config_for(m), e.bounds) for e in entries
                 for m in dict.fromkeys(args.kvm_mode or ()) if m not in e.modes]
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {jobs}")
    # a design loaded from a file is named by its absolute path, so its trace replays anywhere
    spec = canonical_spec(args.design, cls)
    del cls          # resolved above to reject a bad --design at once; each run resolves it again
    status = 0
    procs = min(jobs, len(runs))
    sys.stderr.write(f"explore: {spec}: {len(runs)} run(s) on {procs} process(es) ...\n")
    work = [RunJob(spec, label, cfg, b, red, args.order, args.trace_dir, not args.quiet)
            for label, cfg, b in runs]
    for r in ordered_outcomes(work, procs):
        if r["error"] is not None:
            raise Reported(*r["error"])
        if r["trace"] is not None:
            r["trace"].save(r["trace_path"])
        print(r["text"], flush=True)
        if not r["exhaustive"]:
            status = 1
        if r["violated"]:
            break
    return status


__all__ = ["add_arguments", "run", "bounds_from_args", "single_world"]
