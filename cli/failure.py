"""What the command line does with an exception: one line on stderr and a documented exit status.

The exit statuses (also in ``dirtyproof --help`` and the README):

- 0: every verdict as expected;
- 1: a violation, or a verdict against its expectation;
- 2: bad input, including a design's own crash or a design that breaks the step protocol;
- 3: an internal error of dirtyproof itself (the full traceback goes to a file, named on stderr);
- 130: interrupted (Ctrl-C).

Never a traceback on stderr: a user reads one line, a bug report attaches the file.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback

OK, VIOLATION, BAD_INPUT, INTERNAL, INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = """exit status:
  0    every verdict as expected
  1    a violation, or a verdict against its expectation
  2    bad input (one line on stderr), including a design's own crash, a step that yields
       a non-step or does not yield within $DIRTYPROOF_STEP_TIMEOUT seconds (default 10)
  3    internal error of dirtyproof (one line, and the file holding the traceback)
  130  interrupted (Ctrl-C, or the output was closed)"""


def one_line(text: str) -> str:
    """``text`` folded onto one line (a message that must not span lines)."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "(no message)"


def say(message: str) -> None:
    """Write ``dirtyproof: error: message`` as exactly one line on stderr."""
    sys.stderr.write(f"dirtyproof: error: {one_line(message)}\n")
    sys.stderr.flush()


def save_traceback(exc: BaseException, kind: str = "internal") -> str | None:
    """Write ``exc``'s full traceback to a new file in the temp folder; its path, or ``None``.
    ``kind`` names the file: ``internal`` (dirtyproof's bug) or ``design`` (the user's crash)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        fd, path = tempfile.mkstemp(prefix=f"dirtyproof-{kind}-{time.strftime('%Y%m%d-%H%M%S')}-",
                                    suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"dirtyproof {' '.join(sys.argv[1:])}\n\n{text}")
        return path
    except OSError:
        return None


def _detail(exc: BaseException) -> str:
    """``; full traceback in PATH``: a design's crash can happen deep in a hunt, after progress
    lines; the one error line then names the file that holds the whole story."""
    path = save_traceback(exc, "design")
    return f"; full traceback in {path}" if path else ""


class Reported(Exception):
    """An exception already classified elsewhere (in a worker process): its status and line."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def classify(exc: BaseException) -> tuple[int, str | None]:
    """The exit status ``exc`` means and the one line to print (``None``: "interrupted")."""
    from dirtyproof.impl.crash import describe, design_label, user_design, user_frame
    from dirtyproof.impl.scheduler import DesignCrash
    from dirtyproof.impl.watchdog import BrokenDesign

    from .errors import UserError

    from .interrupt import was_interrupted
    if isinstance(exc, KeyboardInterrupt) or was_interrupted():
        return INTERRUPTED, None
    if isinstance(exc, BrokenPipeError):
        # the reader of our output went away (``dirtyproof check | head``): stop, as if
        # interrupted; stdout goes to /dev/null so the interpreter's last flush does not fail
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return INTERRUPTED, "output closed"
    if isinstance(exc, Reported):
        return exc.code, str(exc)
    if isinstance(exc, UserError):
        return BAD_INPUT, str(exc)
    hunt_runner = sys.modules.get("dirtyproof.hunt.runner")     # not imported: not a HuntError
    if hunt_runner is not None and isinstance(exc, hunt_runner.HuntError):
        return BAD_INPUT, str(exc)
    if isinstance(exc, BrokenDesign):
        return BAD_INPUT, f"broken design: {exc}" + _detail(exc)
    if isinstance(exc, DesignCrash):
        if isinstance(exc.__cause__, BrokenDesign):
            return BAD_INPUT, f"broken design: {exc.__cause__}" + _detail(exc)
        msg, frame = str(exc), user_frame(exc)
        if frame is not None and f"{frame.filename}:{frame.lineno}" not in msg:
            msg += f" (at {frame.filename}:{frame.lineno} in {frame.name})"
        return BAD_INPUT, msg + _detail(exc)
    if isinstance(exc, MemoryError):
        return BAD_INPUT, "out of memory (a world or a search too large for this machine)"
    if isinstance(exc, Exception) and user_frame(exc) is not None:
        # the user's code (a design's attach(), its module's top level...) raised: bad input
        cls = user_design(exc)
        who = f"design {design_label(cls)}" if cls is not None else "user code"
        return BAD_INPUT, f"{who} crashed: {describe(exc)}" + _detail(exc)
    path = save_traceback(exc)
    return INTERNAL, (f"internal error: {type(exc).__name__}: {exc}; "
                      + (f"full traceback in {path}" if path else "the traceback could not be saved")
                      + " (please report it)")


def exit_status(exc: BaseException) -> int:
    """Report ``exc`` in one line on stderr and return the exit status it means."""
    code, line = classify(exc)
    if code == INTERRUPTED:
        sys.stderr.write(f"dirtyproof: interrupted{'' if line is None else f' ({line})'}\n")
    else:
        say(line)
    return code


__all__ = ["BAD_INPUT", "EXIT_CODES_HELP", "INTERNAL", "INTERRUPTED", "OK", "Reported", "VIOLATION", "classify", "exit_status",
           "one_line", "save_traceback", "say"]
