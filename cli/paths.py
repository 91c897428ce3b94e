"""Output paths, checked before any work starts, and the one counterexample folder of every verb.

A verb that would write a trace, a query or a report after minutes of work checks first that it
can: an existing file where a folder is needed (or the reverse), a folder that cannot be created
or written, are bad input. The check writes and removes a probe file and removes the folders it
had to create, so it leaves nothing behind (``os.access`` says yes to root for everything).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UserError

TRACE_DIR_ENV = "DIRTYPROOF_TRACE_DIR"
DEFAULT_TRACE_DIR = ".dirtyproof/traces"


def _probe_dir(folder: Path, what: str) -> None:
    """Make sure files can be created in ``folder`` (created if missing, then removed again)."""
    missing = []
    p = folder
    while not p.exists():
        if p.is_symlink():
            raise UserError(f"{what} {folder}: {p} is a broken symbolic link")
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} {folder}: {p} exists and is not a folder")
    try:
        for m in reversed(missing):
            m.mkdir()
        fd, probe = tempfile.mkstemp(prefix=".dirtyproof-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {folder}: cannot write there ({exc.strerror or exc})") from None
    finally:
        for m in missing:
            try:
                m.rmdir()
            except OSError:
                pass


def output_dir(path: str | None, what: str) -> Path | None:
    """``path`` as a folder files will be written into, checked; ``None`` stays ``None``."""
    if path is None:
        return None
    if path == "":
        raise UserError(f"{what}: empty path")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {path}: exists and is not a folder")
    _probe_dir(folder, what)
    return folder


def output_file(path: str | None, what: str) -> Path | None:
    """``path`` as a file that will be written (its folders created), checked."""
    if path is None:
        return None
    if path == "" or path.endswith(os.sep):
        raise UserError(f"{what} {path!r}: not a file name")
    f = Path(path)
    if f.is_dir():
        raise UserError(f"{what} {path}: is a folder, not a file")
    if f.exists() and not os.access(f, os.W_OK):
        raise UserError(f"{what} {path}: the file is not writable")
    _probe_dir(f.parent if str(f.parent) else Path("."), what)
    return f


def trace_dir(args) -> Path:
    """The counterexample folder of ``hunt``, ``prove`` and ``check``: ``--trace-dir``, else
    ``$DIRTYPROOF_TRACE_DIR``, else ``.dirtyproof/traces``; checked."""
    given = getattr(args, "trace_dir", None)
    if given is not None:
        return output_dir(given, "--trace-dir")
    env = os.environ.get(TRACE_DIR_ENV)
    if env is not None:
        return output_dir(env, f"${TRACE_DIR_ENV}")
    return output_dir(DEFAULT_TRACE_DIR, "the trace folder")


def add_trace_dir_argument(p) -> None:
    """``--trace-dir DIR`` (and the old ``--traces`` of prove and check, hidden)."""
    import argparse
    p.add_argument("--trace-dir", metavar="DIR", default=None,
                   help=f"where counterexample traces go (default: ${TRACE_DIR_ENV} or {DEFAULT_TRACE_DIR})")
    p.add_argument("--traces", dest="trace_dir", default=None, help=argparse.SUPPRESS)


__all__ = ["DEFAULT_TRACE_DIR", "TRACE_DIR_ENV", "add_trace_dir_argument", "output_dir", "output_file",
           "trace_dir"]
