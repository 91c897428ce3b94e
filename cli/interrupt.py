"""Ctrl-C that always works: within a second, from any verb, inside Z3 too.

Two things stopped Ctrl-C before. (1) A ``KeyboardInterrupt`` raised while a finalizer runs
(Z3 frees its objects in ``__del__``, constantly) is printed as "Exception ignored" and dropped:
the program went on. :func:`_on_sigint` therefore does not raise inside a ``__del__``; it asks
again 20 ms later (``_thread.interrupt_main``). (2) Python runs signal handlers only between
bytecodes of the main thread, never while it is inside a Z3 query. The C-level handler still
writes the signal number to a wakeup file descriptor (``signal.set_wakeup_fd``); a watcher
thread reads it and interrupts the running query (``proofs.solver.interrupt_running``).
"""
from __future__ import annotations

import _thread
import signal
import socket
import sys
import threading
from contextlib import contextmanager

RETRY_S = 0.02
_interrupted = threading.Event()


def _quiet_after_interrupt(unraisable) -> None:
    """``sys.unraisablehook``: once Ctrl-C was pressed, objects it left half-built fail in their
    finalizers (Z3's ``__del__``); that noise is not an error worth a traceback on stderr."""
    if _interrupted.is_set():
        return
    sys.__unraisablehook__(unraisable)


def _in_finalizer(frame) -> bool:
    """Whether ``frame`` runs inside a ``__del__`` (where an exception would be dropped)."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum, frame):
    """Raise ``KeyboardInterrupt``, except inside a finalizer: then try again shortly."""
    _interrupted.set()
    if _in_finalizer(frame):
        threading.Timer(RETRY_S, _thread.interrupt_main, (signal.SIGINT,)).start()
        return
    raise KeyboardInterrupt


def _watch(sock) -> None:
    """Read signal numbers from the wakeup socket; on SIGINT interrupt the running Z3 query."""
    while True:
        try:
            data = sock.recv(64)
        except OSError:
            data = b""
        if not data:
            sock.close()
            return
        if signal.SIGINT in data:
            _interrupted.set()
            solver = sys.modules.get("dirtyproof.proofs.solver")
            if solver is not None:
                solver.interrupt_running()


@contextmanager
def ctrl_c_stops():
    """Install the SIGINT handler and the Z3 watcher for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupted.clear()        # a new invocation (in-process callers run several)
    old_handler = signal.signal(signal.SIGINT, _on_sigint)
    old_hook, sys.unraisablehook = sys.unraisablehook, _quiet_after_interrupt
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:          # not the main interpreter: no wakeup fd, the handler alone
        old_fd = None
    threading.Thread(target=_watch, args=(reader,), name="dirtyproof-ctrl-c", daemon=True).start()
    try:
        yield
    finally:
        if old_fd is not None:
            signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, old_handler)
        sys.unraisablehook = old_hook
        writer.close()          # the watcher's recv returns b"" and it exits
        try:
            reader.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def was_interrupted() -> bool:
    """Whether Ctrl-C was pressed in this process: then any exception that surfaces is its
    consequence (ctypes wraps a ``KeyboardInterrupt`` raised while converting an argument in an
    ``ArgumentError``, for one) and the exit status is 130."""
    return _interrupted.is_set()


__all__ = ["ctrl_c_stops", "was_interrupted"]
