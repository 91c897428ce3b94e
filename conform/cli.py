"""``dirtyproof conform``: run a real migration (or read a recorded one) and check every rule.

Exit status: 0 every rule holds (or does not apply), 1 a rule broke, 2 bad input or QEMU could
not be run (one line on stderr), 130 interrupted (both QEMUs are stopped first).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from dirtyproof.cli.errors import UserError


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return v


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split("."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a version like 10.0.2: {text!r}") from None


def add_arguments(p) -> None:
    """The conform verb's flags."""
    rec = p.add_argument_group("check a recorded run instead of running one")
    # --qemu-trace, not --trace: run's --trace writes a model trace, this reads QEMU's own log.
    rec.add_argument("--qemu-trace", metavar="FILE", help="QEMU's trace log of the source (-msg timestamp=on)")
    rec.add_argument("--trace", dest="old_trace", help=argparse.SUPPRESS)
    rec.add_argument("--samples", metavar="FILE", help="query-migrate samples, JSON lines (as --save-samples writes)")
    rec.add_argument("--qemu-version", type=_version, metavar="X.Y.Z",
                     help="QEMU's version, when the samples file has no header (9.2+ is the periodic design)")
    run = p.add_argument_group("run a migration")
    run.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary (default: %(default)s)")
    run.add_argument("--qemu-root", metavar="DIR",
                     help="a QEMU extracted from its .deb (dpkg-deb -x): DIR/usr/bin/qemu-system-x86_64")
    run.add_argument("--hot-mib", type=_count, default=4, help="hot-set size in MiB (default: %(default)s)")
    run.add_argument("--delay", type=_count, default=0,
                     help="spin iterations after each page write; higher is a lower dirty rate (default: 0)")
    run.add_argument("--bandwidth", type=_count, metavar="BYTES_PER_S", help="max-bandwidth (QEMU's default: 128 MiB/s)")
    run.add_argument("--downtime", type=_count, metavar="MS", help="downtime-limit (QEMU's default: 300 ms)")
    run.add_argument("--auto-converge", action=argparse.BooleanOptionalAction, default=True,
                     help="the auto-converge capability (default: on)")
    run.add_argument("--throttle-initial", type=_count, metavar="PCT",
                     help="cpu-throttle-initial (QEMU's default: 20)")
    run.add_argument("--linger", type=_positive_float, metavar="SECONDS",
                     help="keep the source running this long after the migration ends, and watch it")
    run.add_argument("--time-limit", type=_positive_float, default=60.0, metavar="SECONDS",
                     help="cancel the migration after this long (default: %(default)s)")
    run.add_argument("--guest-check", action=argparse.BooleanOptionalAction, default=True,
                     help="the guest checks every page before rewriting it (default: on)")
    run.add_argument("--save-qemu-trace", metavar="FILE", help="keep the source's trace log here")
    run.add_argument("--save-trace", dest="old_save_trace", help=argparse.SUPPRESS)
    run.add_argument("--save-samples", metavar="FILE", help="keep the samples (and results) here")
    p.add_argument("--quiet", action="store_true", help="print only broken rules and the summary")


def _record_from_files(args):
    from .trace import RecordError, load_record
    if not args.qemu_trace:
        raise UserError("--samples needs --qemu-trace")
    try:
        return load_record(args.qemu_trace, args.samples)
    except RecordError as exc:
        raise UserError(str(exc)) from None


def _check_qemu(qemu: str, flag: str) -> None:
    """The QEMU binary exists and can be run (one line of bad input otherwise, before any work)."""
    import shutil
    if "/" not in qemu:
        if shutil.which(qemu) is None:
            raise UserError(f"{flag}: no {qemu!r} on PATH")
        return
    f = Path(qemu)
    if not f.exists():
        raise UserError(f"{flag}: no such QEMU binary {qemu}")
    if f.is_dir():
        raise UserError(f"{flag}: {qemu} is a folder, not a QEMU binary")
    if not os.access(f, os.X_OK):
        raise UserError(f"{flag}: {qemu} is not executable")


def _run(args):
    from .guest import BuildError
    from .qmp import QMPError
    from .runner import RunError, RunParams, run_migration, save_record
    from .trace import RecordError, build_record, parse_samples, parse_trace

    from .install import data_dirs

    qemu, dirs = args.qemu, ()
    if args.qemu_root:
        root = Path(args.qemu_root)
        qemu, dirs = str(root / "usr/bin/qemu-system-x86_64"), data_dirs(root)
    else:
        # a QEMU extracted from a .deb (ROOT/usr/bin/qemu-...) needs its own data folder first
        root = Path(qemu).resolve().parent.parent.parent if "/" in qemu else None
        if root is not None and root != Path("/") and (root / "usr/share/qemu").is_dir():
            dirs = data_dirs(root)
    _check_qemu(qemu, "--qemu-root" if args.qemu_root else "--qemu")
    from dirtyproof.cli.paths import output_file
    output_file(args.save_qemu_trace, "--save-qemu-trace")          # before a minute of migration, not after
    output_file(args.save_samples, "--save-samples")
    params = RunParams(qemu=qemu, data_dirs=dirs, hot_mib=args.hot_mib, delay=args.delay,
                       bandwidth=args.bandwidth, downtime_ms=args.downtime,
                       auto_converge=args.auto_converge, time_limit=args.time_limit,
                       guest_check=args.guest_check, throttle_initial=args.throttle_initial,
                       linger=args.linger or 0.0)
    try:
        params.check()
    except ValueError as exc:
        raise UserError(str(exc)) from None

    ticks = []

    def ticker(sample):
        q = sample["query"]
        ticks.append(1)
        if not args.quiet:
            ram = q.get("ram", {})
            sys.stderr.write(f"\r  {q.get('status', '?'):<10} syncs {ram.get('dirty-sync-count', 0):>4}  "
                             f"throttle {q.get('cpu-throttle-percentage', 0):>2}%  "
                             f"remaining {ram.get('remaining', 0) // 4096:>6} pages ")
            sys.stderr.flush()

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)     # a kill stops both QEMUs, as Ctrl-C does
    try:
        rec = run_migration(params, on_sample=ticker)
    except (RunError, BuildError, QMPError) as exc:
        raise UserError(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if ticks and not args.quiet:
            sys.stderr.write("\n")
    if args.save_qemu_trace or args.save_samples:
        save_record(rec, args.save_qemu_trace or "/dev/null", args.save_samples or "/dev/null")
    try:
        header, samples, result = parse_samples("\n".join(rec.samples_lines()))
        return build_record(parse_trace(rec.trace_text, "the source's trace"), header, samples, result)
    except RecordError as exc:
        raise UserError(f"the run left no usable record: {exc}") from None


def run(args) -> int:
    """Run (or read) a migration, check every rule, print the verdicts; 0 all hold, 1 one broke."""
    from .report import print_report
    from .rules import check_record

    for old, new in (("old_trace", "--qemu-trace"), ("old_save_trace", "--save-qemu-trace")):
        if getattr(args, old) is not None:
            raise UserError(f"conform: --{old[4:].replace('_', '-')} is called {new} now (QEMU's trace log; "
                            "run's --trace writes a model trace)")
    if args.qemu_trace or args.samples:
        rec = _record_from_files(args)
    else:
        rec = _run(args)
    verdicts = check_record(rec, args.qemu_version)
    code = 1 if any(v.broken for v in verdicts) else 0
    try:
        print_report(rec, verdicts, quiet=args.quiet, version=args.qemu_version)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader (head, less) went away: the verdict is still the exit status
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code
