"""Naming a design and the line of its code that crashed, for one-line error reports.

A crash is the design's own (bad input, exit 2) when its traceback passes through a file that
is neither dirtyproof's nor a library's: that file is the user's, and the last such frame is the
line to show. A crash with no such frame is dirtyproof's own (an internal error).
"""
from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

# The folders of dirtyproof's own code (the namespace package's parts) and of libraries.
_OURS = tuple(str(Path(__file__).resolve().parent.parent / part) for part in
              ("impl", "spec", "proofs", "hunt", "mutants", "cli", "checked", "explore", "conform"))
_LIBS = tuple({str(Path(p).resolve()) for p in (sysconfig.get_paths().get("stdlib"),
                                                 sysconfig.get_paths().get("purelib"),
                                                 sysconfig.get_paths().get("platlib")) if p})


def design_label(cls) -> str:
    """How to name a design class to its author: its registered name if that name resolves to
    this very class, else ``module:Class`` (a subclass that inherits ``name`` from ``Legacy`` is
    not ``legacy``), with its own ``name`` in brackets when it has one."""
    if not isinstance(cls, type):
        cls = type(cls)
    name = vars(cls).get("name")
    if isinstance(name, str) and name:
        try:
            from .designs import resolve
            if resolve(name) is cls:
                return name
        except Exception:  # an unregistered name: fall through to module:Class
            pass
    spec = f"{cls.__module__}:{cls.__qualname__}"
    return f"{spec} ({name})" if isinstance(name, str) and name else spec


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code: not dirtyproof's, not a library's, not built in."""
    if not filename or filename.startswith("<"):
        return False
    try:
        path = str(Path(filename).resolve())
    except OSError:
        return False
    if path.startswith(_OURS):
        return False
    if "site-packages" in path or "dist-packages" in path or path.startswith(_LIBS):
        return False
    return True


def _user_tb(exc: BaseException):
    """The last traceback object of ``exc`` (or its causes) whose frame is user code, or ``None``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb, last = exc.__traceback__, None
        while tb is not None:
            if is_user_file(tb.tb_frame.f_code.co_filename):
                last = tb
            tb = tb.tb_next
        if last is not None:
            return last
        exc = exc.__cause__ or exc.__context__
    return None


def user_frame(exc: BaseException):
    """The last traceback entry of ``exc`` (or its causes) in user code, or ``None``."""
    tb = _user_tb(exc)
    if tb is None:
        return None
    return traceback.FrameSummary(tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame.f_code.co_name,
                                  lookup_line=False)


def user_design(exc: BaseException):
    """The design class whose method is the user frame of ``exc`` (its ``self``), or ``None``."""
    tb = _user_tb(exc)
    me = tb.tb_frame.f_locals.get("self") if tb is not None else None
    from .designs.base import Design
    return type(me) if isinstance(me, Design) else None


def root_cause(exc: BaseException) -> BaseException:
    """The innermost explicit cause of ``exc`` (what the design raised)."""
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def describe(exc: BaseException) -> str:
    """``file.py:12 in func: TypeError: message`` for a crash through user code; the exception
    alone otherwise."""
    cause = root_cause(exc)
    text = f"{type(cause).__name__}: {cause}"
    frame = user_frame(exc)
    if frame is None:
        return text
    return f"{frame.filename}:{frame.lineno} in {frame.name}: {text}"


__all__ = ["describe", "design_label", "is_user_file", "root_cause", "user_design", "user_frame"]
