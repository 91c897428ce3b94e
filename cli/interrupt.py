"""Ctrl-C that always works: within a second, from any verb, inside Z3 too.

Two things stopped Ctrl-C before. (1) A ``KeyboardInterrupt`` raised while a finalizer runs
(Z3 frees its objects in ``__del__``, constantly) is printed as "Exception ignored" and dropped:
the program went on. :func:`_on_sigint` therefore does not raise inside a ``__del__``; it asks
again 20 ms later (``_thread.interrupt_main``). (2) Python runs signal handlers only between
bytecodes of the main thread, never while it is inside a Z3 query. The C-level handler still
writes the signal number to a wakeup file descriptor (``signal.set_wakeup_fd``); a watcher
thread reads it and interrupts the running query (``proofs.solver.interrupt_running``).

Three windows let a late Ctrl-C through (``prove`` once ran on for 5 s, a query's whole time
limit): (a) ``Z3_interrupt`` is not sticky, so a Ctrl-C that arrived as a query was being set up
(registered, but Z3 not yet listening) was lost and the query ran to its limit: the solver keeps a
stop flag it checks around every query, and :func:`_enforce` interrupts the running query again
every 50 ms until the command has stopped; (b) a ``KeyboardInterrupt`` that some code caught and
dropped (ctypes turns one raised while converting an argument into an ``ArgumentError``, which an
``except Exception`` takes): :func:`_enforce` raises it again in the main thread when, 0.3 s after
the Ctrl-C, the main thread is not unwinding an exception (``sys._current_exceptions``: cleanup
in ``finally`` blocks, such as stopping QEMU or a process pool, is never cut short); (c) a Ctrl-C
while the command's modules were still being imported: :func:`dirtyproof.cli.main.main`
installs this handler before importing anything heavy.
"""
from __future__ import annotations

import _thread
import signal
import socket
import sys
import threading
from contextlib import contextmanager

RETRY_S = 0.02
REINTERRUPT_S = 0.05          # how often a running Z3 query is interrupted again after a Ctrl-C
SWALLOWED_S = 0.3             # a Ctrl-C not being acted on after this long was dropped: raise it again
_interrupted = threading.Event()
_active = threading.Event()   # a command is running under ctrl_c_stops()
_enforcer: list = []          # the running _enforce thread, joined when the command ends


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
        retry = threading.Timer(RETRY_S, _interrupt_main_if_active)
        retry.daemon = True         # never keeps a finished command alive
        retry.start()
        return
    raise KeyboardInterrupt


def _interrupt_main_if_active() -> None:
    """Deliver SIGINT to the main thread again, if the command is still running."""
    if _active.is_set():
        _thread.interrupt_main(signal.SIGINT)


def _solver():
    """The solver module if it was imported (never imported here: Z3 is slow to load)."""
    return sys.modules.get("dirtyproof.proofs.solver")


def _main_unwinding() -> bool:
    """Whether the main thread is handling an exception (in an ``except``/``finally``/``__exit__``)."""
    try:
        info = sys._current_exceptions().get(threading.main_thread().ident)
    except Exception:  # noqa: BLE001 - an interpreter without it: assume it is, never re-raise
        return True
    exc = info[1] if isinstance(info, tuple) else info
    return exc is not None


def _enforce() -> None:
    """After a Ctrl-C, until the command has stopped: interrupt the running Z3 query every
    :data:`REINTERRUPT_S` (one that began just as the first interrupt came would run to its time
    limit), and raise ``KeyboardInterrupt`` in the main thread again if it is running on as if
    nothing happened (not unwinding) :data:`SWALLOWED_S` after the last delivery."""
    import time
    last = time.monotonic()
    while _active.is_set():
        solver = _solver()
        if solver is not None:
            solver.interrupt_running()
        if time.monotonic() - last >= SWALLOWED_S:
            if not _main_unwinding():
                _thread.interrupt_main(signal.SIGINT)
            last = time.monotonic()
        time.sleep(REINTERRUPT_S)


def _watch(sock) -> None:
    """Read signal numbers from the wakeup socket; on SIGINT interrupt the running Z3 query and
    start :func:`_enforce` (once)."""
    enforcing = False
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
            solver = _solver()
            if solver is not None:
                solver.interrupt_running()
            if not enforcing and _active.is_set():
                enforcing = True
                t = threading.Thread(target=_enforce, name="dirtyproof-ctrl-c-enforce", daemon=True)
                _enforcer.append(t)
                t.start()


@contextmanager
def ctrl_c_stops():
    """Install the SIGINT handler and the Z3 watcher for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupted.clear()        # a new invocation (in-process callers run several)
    solver = _solver()
    if solver is not None:
        solver.clear_interrupt()
    _active.set()
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
        _active.clear()         # _enforce and the finalizer retry stop here
        while _enforcer:
            _enforcer.pop().join(1.0)
        solver = _solver()
        if solver is not None:
            solver.clear_interrupt()
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


def worker_ignores_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them (no traceback from a worker).

    A forked worker also inherits the parent's signal wakeup fd (this module): its step
    timer's SIGALRM would be written there, and once that socket is gone Python prints
    "Exception ignored when trying to write to the signal wakeup fd" on the shared stderr, a
    stray line after the one error line. Workers need no wakeup fd: it is reset."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:          # not the main thread of the main interpreter: none was set
        pass


__all__ = ["ctrl_c_stops", "was_interrupted", "worker_ignores_sigint"]
