"""``dirtyproof explore``: exhaustive exploration of a small world, for any design.

Exit 0 when no violation exists within the bounds (every KVM mode asked for), 1 on a violation
(or when a bound cut the search short, so nothing was shown exhaustively), 2 on bad input.
"""
from __future__ import annotations

import sys

from dirtyproof.cli.common import design_class, positive_int
from dirtyproof.cli.errors import UserError
from dirtyproof.impl.config import KVM_MODES

from .bounds import Bounds
from .engine import ORDERS
from .reductions import Reductions
from .run import explore_modes


def add_arguments(p) -> None:
    """The explore verb's flags: the design, the world, each bound, the reductions."""
    d = Bounds()
    p.add_argument("--design", default="legacy", metavar="NAME|module:Class",
                   help="a shipped design, a mutant of the corpus or a user class (default: legacy)")
    p.add_argument("--kvm-mode", choices=KVM_MODES, action="append",
                   help="KVM dirty-log mode; repeat for several (default: every mode)")
    p.add_argument("--config", metavar="FILE", help="JSON file of Config fields for the explored world "
                   "(default: the explorer's small world, docs/explore.md)")
    p.add_argument("--guest-writes", type=positive_int, default=d.guest_writes, help="vCPU writes per path")
    p.add_argument("--device-writes", type=positive_int, default=d.device_writes, help="device writes per path")
    p.add_argument("--clock-moves", type=positive_int, default=d.clock_moves,
                   help="clock moves per path (moves to a wake-up when every thread sleeps are free)")
    p.add_argument("--cancels", type=positive_int, default=d.cancels, help="cancel-and-restart per path")
    p.add_argument("--moves", type=positive_int, default=d.moves,
                   help="writes, clock moves and cancels per path, all together")
    p.add_argument("--max-depth", type=positive_int, default=d.max_depth, help="longest path explored")
    p.add_argument("--max-states", type=positive_int, default=d.max_states, help="stop after this many distinct states")
    p.add_argument("--no-por", action="store_true", help="turn the partial-order reduction off")
    p.add_argument("--order", choices=ORDERS, default="moves",
                   help="expansion order: by moves spent then depth (default), or plain breadth-first")
    p.add_argument("--trace-dir", metavar="DIR", help="where a counterexample trace goes "
                   "(default: $DIRTYPROOF_TRACE_DIR or .dirtyproof/traces)")
    p.add_argument("--quiet", action="store_true", help="no step list, only the summary")


def bounds_from_args(args) -> Bounds:
    """The :class:`Bounds` the flags ask for; a bound that explores nothing is bad input."""
    for flag, v in (("--max-depth", args.max_depth), ("--max-states", args.max_states)):
        if v < 1:
            raise UserError(f"{flag} must be at least 1 (a bound of {v} explores nothing)")
    try:
        return Bounds(guest_writes=args.guest_writes, device_writes=args.device_writes,
                      clock_moves=args.clock_moves, cancels=args.cancels, moves=args.moves,
                      max_depth=args.max_depth, max_states=args.max_states)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _config_file(path: str):
    """The Config of a JSON file (the explored world); :class:`UserError` in one line otherwise."""
    import json
    from pathlib import Path

    from dirtyproof.impl.config import Config
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
    """Explore the design in every KVM mode asked for; print TLC-style summaries."""
    cls = design_class(args.design)
    bounds = bounds_from_args(args)
    base = _config_file(args.config) if args.config else None
    modes = args.kvm_mode or list(KVM_MODES)
    red = Reductions(por=not args.no_por)
    status = 0
    for out in explore_modes(cls, args.design, modes, bounds, red, base_config=base, order=args.order,
                             trace_dir=args.trace_dir, steps=not args.quiet,
                             progress=lambda r, n, q, d: sys.stderr.write(
                                 f"  ... {n} distinct states, {q} queued, depth {d}\n")):
        print(out.text)
        if not out.result.exhaustive:
            status = 1
        if out.result.violation is not None:
            break
    return status


__all__ = ["add_arguments", "run", "bounds_from_args"]
