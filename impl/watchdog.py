"""A design step must yield a step, and soon: a time limit and a type check for one atomic step.

:func:`next_step` replaces ``next(actor.gen)`` in :meth:`World.step_thread`. A thread step that
yields something that is not a step (an ``int``, ``None``...) or does not yield within
:func:`step_timeout` seconds is a broken design, not a verdict: :class:`BadYield` or
:class:`StepTimeout` is raised, naming the design method and the line it was at.

Both derive from :class:`BrokenDesign`, a ``BaseException``: a design's ``except Exception`` must
not swallow the time limit, and the hunter must not treat a broken design as a counterexample
to shrink (Hypothesis re-runs failing examples; re-running a step that hangs for 10 s each time
would take hours). They travel to the command line, which reports one line and exit status 2.

The time limit uses ``signal.setitimer`` (SIGALRM) in the main thread of a process: the
command's own process, and the process-pool workers of ``check --jobs`` (``concurrent.futures``
runs a worker's tasks in that worker's main thread; a forked worker re-arms the timer on its
first step, as ``_Alarm.pid`` tells it has none, and a spawned one installs the handler afresh;
``tests/test_cli_issue10.py`` shows a step that never yields stopped inside such a worker).
Python delivers signals to the main thread only, so a step run in any other thread (dirtyproof
runs none there, a library caller may) is timed by :class:`_ThreadWatch` instead, which raises
the timeout in that thread. The limit is not enforced where SIGALRM belongs to someone else
(pytest-timeout's signal method): those steps run unlimited, as before the limit existed.
"""
from __future__ import annotations

import atexit
import os
import signal
import threading

TIMEOUT_ENV = "DIRTYPROOF_STEP_TIMEOUT"
DEFAULT_TIMEOUT_S = 10.0

# What a step may yield. Structured step records (one class per kind) register here, so that
# this check and the world's consumers agree on what a step is.
STEP_TYPES: list[type] = [str]
try:
    from .steps import Step as _StepRecord
    STEP_TYPES.append(_StepRecord)
except ImportError:  # pragma: no cover - a model without structured steps
    pass


class BrokenDesign(BaseException):
    """A design that breaks the step protocol: exit status 2 on the command line, never shrunk."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


class BadYield(BrokenDesign):
    """A thread step yielded a value that is not a step."""


class StepTimeout(BrokenDesign):
    """A thread step did not yield within the time limit (an endless loop in design code)."""


def register_step_type(cls: type) -> type:
    """Accept instances of ``cls`` as steps (a decorator for structured step records)."""
    if cls not in STEP_TYPES:
        STEP_TYPES.append(cls)
    return cls


def step_timeout() -> float:
    """The time limit of one step in seconds: ``$DIRTYPROOF_STEP_TIMEOUT`` or 10; 0 turns it off.

    A malformed value raises ``ValueError`` (the command line reports it as bad input)."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None or text == "":
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{TIMEOUT_ENV}={text!r} must be a finite number of seconds >= 0")
    return value


def innermost_frame(gen):
    """The frame a generator (following ``yield from``) is suspended in, or ``None``."""
    frame = None
    while gen is not None and getattr(gen, "gi_frame", None) is not None:
        frame = gen.gi_frame
        gen = getattr(gen, "gi_yieldfrom", None)
    return frame


def where(frame) -> str:
    """``func (file.py:12)`` for a frame, ``""`` for none."""
    if frame is None:
        return ""
    return f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})"


class _Alarm:
    """A periodic SIGALRM that stops a step still running after three ticks of ``limit / 2``.

    One interval timer for the process instead of two ``setitimer`` calls per step (steps take
    microseconds; the calls cost a tenth of a hunt): each tick compares the step's serial number
    with the one it saw last, so a step is stopped after between ``limit`` and ``1.5 * limit``."""

    def __init__(self) -> None:
        self.actor = None           # the thread whose step is running, or None between steps
        self.serial = 0             # bumped by every step
        self.seen = -1              # the serial the last tick saw running
        self.ticks = 0              # consecutive ticks that saw the same step running
        self.seconds = 0.0          # the limit the timer runs with
        self.pid = 0                # the process that armed it (timers do not survive a fork)

    def arm(self, limit: float) -> None:
        """(Re)start the interval timer for ``limit`` seconds per step."""
        if self.pid != os.getpid():
            atexit.register(disarm)
        self.seconds, self.pid = limit, os.getpid()
        signal.setitimer(signal.ITIMER_REAL, limit / 2, limit / 2)

    def __call__(self, signum, frame):
        if self.actor is None:
            self.seen, self.ticks = -1, 0
            return
        if self.serial != self.seen:
            self.seen, self.ticks = self.serial, 1
            return
        self.ticks += 1
        if self.ticks < 3:
            return
        actor, self.actor, self.seen, self.ticks = self.actor, None, -1, 0
        raise StepTimeout(f"step of thread {actor!r} did not yield within {self.seconds:g} s "
                          f"(endless loop?) in {where(frame)}", where(frame))


_alarm = _Alarm()
_installed: bool | None = None


def disarm() -> None:
    """Stop the interval timer (before the interpreter exits: a tick after Python restored the
    default SIGALRM action would kill the process with "Alarm clock")."""
    if _alarm.pid == os.getpid() and hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)
        _alarm.seconds, _alarm.pid = 0.0, 0


def _can_time() -> bool:
    """Whether this process can time steps: main thread, and SIGALRM ours or unused."""
    global _installed
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return False
    if _installed is None:
        current = signal.getsignal(signal.SIGALRM)
        if current in (signal.SIG_DFL, None) or current is _alarm:
            signal.signal(signal.SIGALRM, _alarm)
            _installed = True
        else:
            _installed = False
    if _installed and signal.getsignal(signal.SIGALRM) is not _alarm:
        # someone took SIGALRM over since (pytest-timeout, say): the timer is theirs now
        _installed, _alarm.pid = False, 0
    return _installed


_env_cache: tuple = (None, DEFAULT_TIMEOUT_S)


class _ThreadTimeout(StepTimeout):
    """Raised asynchronously in a thread whose step ran over its limit (turned into a
    :class:`StepTimeout` with the message by :func:`next_step`)."""

    def __init__(self, message: str = "step time limit", where: str = ""):
        super().__init__(message, where)


class _ThreadWatch:
    """The step limit for threads other than the main one, which SIGALRM never reaches.

    One daemon thread checks the running steps every tenth of the limit and raises
    :class:`_ThreadTimeout` in a thread whose step is over it (``PyThreadState_SetAsyncExc``;
    like a signal it lands between bytecodes, so it stops a Python loop, not a blocking C call).
    A timeout fired just as the step ended is withdrawn before :func:`next_step` returns."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[int, list] = {}      # thread id -> [start, limit, fired]
        self.thread: threading.Thread | None = None
        self.pid = 0

    def begin(self, limit: float) -> int:
        """Register the calling thread's step; its thread id."""
        import time
        tid = threading.get_ident()
        with self.lock:
            self.running[tid] = [time.monotonic(), limit, False]
            if self.thread is None or not self.thread.is_alive() or self.pid != os.getpid():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._watch, name="dirtyproof-step-watch", daemon=True)
                self.thread.start()
        return tid

    def end(self, tid: int) -> None:
        """The step of thread ``tid`` is over: unregister it, withdrawing a timeout not yet raised."""
        with self.lock:
            entry = self.running.pop(tid, None)
            if entry is not None and entry[2]:
                _set_async_exc(tid, None)

    def _watch(self) -> None:
        import time
        while True:
            with self.lock:
                if not self.running:
                    self.thread = None
                    return
                now = time.monotonic()
                step = min(e[1] for e in self.running.values()) / 10
                for tid, e in self.running.items():
                    if not e[2] and now - e[0] > e[1]:
                        e[2] = True
                        _set_async_exc(tid, _ThreadTimeout)
            time.sleep(max(0.005, min(step, 0.5)))


def _set_async_exc(tid: int, exc) -> None:
    """Raise ``exc`` (a class; ``None`` withdraws a pending one) in thread ``tid``."""
    import ctypes
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(exc) if exc else None)


_threads = _ThreadWatch()


def next_step(actor):
    """``next(actor.gen)`` with the time limit and the check that a step was yielded."""
    global _env_cache
    text = os.environ.get(TIMEOUT_ENV)
    if text != _env_cache[0]:
        _env_cache = (text, step_timeout())
    limit = _env_cache[1]
    timed = limit > 0 and _can_time()
    if timed:
        if _alarm.seconds != limit or _alarm.pid != os.getpid():    # a forked worker has no timer
            _alarm.arm(limit)
        _alarm.serial += 1
        _alarm.actor = actor.name
        try:
            value = next(actor.gen)
        finally:
            _alarm.actor = None
    elif limit > 0 and threading.current_thread() is not threading.main_thread():
        tid = _threads.begin(limit)
        try:
            value = next(actor.gen)
        except _ThreadTimeout as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            at = where(tb.tb_frame if tb is not None else None)
            raise StepTimeout(f"step of thread {actor.name!r} did not yield within {limit:g} s "
                              f"(endless loop?) in {at}", at) from None
        finally:
            _threads.end(tid)
    else:
        value = next(actor.gen)
    if not isinstance(value, tuple(STEP_TYPES)):
        at = where(innermost_frame(actor.gen))
        raise BadYield(f"step of thread {actor.name!r} yielded {value!r} ({type(value).__name__}), "
                       f"not a step (a dirtyproof.impl.steps.Step or a str)" + (f", in {at}" if at else ""), at)
    return value


__all__ = ["BadYield", "BrokenDesign", "DEFAULT_TIMEOUT_S", "disarm", "STEP_TYPES", "StepTimeout", "TIMEOUT_ENV",
           "next_step", "register_step_type", "step_timeout"]
