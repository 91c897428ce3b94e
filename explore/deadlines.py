"""The deadlines a clock move may target: the reference times and periods the run's code reads.

A clock move changes what a thread does only through a comparison of the clock with a time the
code computes: a sleeping thread's wake-up (always a target), or a reference time of the
``MigrationState`` (``time_last_bitmap_sync``, ``last_sync_end_ms``) plus a period of the config
(``dirty_sync_timer_ms``, the watcher's, ``iterate_sync_ms``) or the model's 1 s rate period.
A period no code reads, or a reference time no code reads, is no deadline of this design:
1 ms past it is not a time at which any thread can decide otherwise than just before it
(iterate-sync's 3 s in background-v1's world). So the explorer's clock targets are built from
the reference times and periods read while the run's steps execute, recorded here; a step that
reads one not yet in the set stops the run, which starts again with it (the set is a fixpoint
of the run: every reference time and period its code read is one its clock could reach).

Recording is by properties on a copy of the config (:func:`deadline_config`) and on the
attempt's ``MigrationState`` (:func:`watch_mig`), switched on (``_ON``) only while a step of
the world runs or a world is made (the explorer's ``_step`` and ``fresh``, explore/engine.py):
the explorer's own reads (fingerprints, undo, the checks' reports) are not the code's.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from dirtyproof.impl.config import Config
from dirtyproof.impl.world import MigrationState

from .choices import PERIOD_FIELDS, RATE_PERIOD_MS, TIME_FIELDS

_ON = [False]            # recording on: a step of the world runs, or a world is made
READ: set = set()        # the fields read while recording was on, since the last start()


def _prop(name: str) -> property:
    key = "_" + name

    def get(self):
        if _ON[0]:
            READ.add(name)
        return self.__dict__[key]

    def put(self, value):
        self.__dict__[key] = value

    return property(get, put, doc=f"``{name}``; a read while a step runs is recorded (explore/deadlines.py)")


class DeadlineConfig(Config):
    """A ``Config`` whose period fields record their reads while a step runs."""

    # frozen as Config is (its __setattr__ refuses); its __init__, used by dataclasses.replace,
    # sets fields with object.__setattr__, which goes through these properties' setters
    locals().update({n: _prop(n) for n in PERIOD_FIELDS})

    def __eq__(self, other):
        """Equal to a ``Config`` with the same fields (the dataclass's own ``==`` wants one class)."""
        if not isinstance(other, Config):
            return NotImplemented
        was, _ON[0] = _ON[0], False
        try:
            return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Config))
        finally:
            _ON[0] = was

    __hash__ = Config.__hash__


def deadline_config(cfg: Config) -> DeadlineConfig:
    """A copy of ``cfg`` (equal to it field for field) whose period fields record their reads."""
    if isinstance(cfg, DeadlineConfig):
        return cfg
    out = object.__new__(DeadlineConfig)
    d = out.__dict__
    d.update(cfg.__dict__)
    for n in PERIOD_FIELDS:
        d["_" + n] = d.pop(n)
    return out


_MIG_CLASSES: dict = {}


def _mig_class(cls):
    sub = _MIG_CLASSES.get(cls)
    if sub is None:
        sub = type(f"Deadline{cls.__name__}", (cls,), {
            **{n: _prop(n) for n in TIME_FIELDS},
            "__doc__": "A MigrationState whose reference times record their reads while a step runs.",
            "_deadline_watched": True})
        # named as the class it stands for: the fingerprint's per-class plans (IGNORED) go by name
        sub.__qualname__ = cls.__qualname__
        _MIG_CLASSES[cls] = sub
    return sub


def watch_mig(w) -> None:
    """Switch a new attempt's ``MigrationState`` to its reading-recording subclass (once)."""
    mig = w.mig
    if mig is not None and not getattr(type(mig), "_deadline_watched", False) and isinstance(mig, MigrationState):
        d = mig.__dict__
        for n in TIME_FIELDS:
            d["_" + n] = d.pop(n)
        mig.__class__ = _mig_class(type(mig))


@dataclass(frozen=True)
class Deadlines:
    """The clock targets' ingredients: the reference times and the periods (ms) the code read,
    and how many times the run started again because a step read a new one."""

    refs: tuple[str, ...]
    periods: tuple[int, ...]
    fields: frozenset = frozenset()
    restarts: int = 0
    every: bool = False            # every one of the config, read or not (``--all-deadlines``)

    def describe(self) -> str:
        """One line for B."""
        refs = ", ".join(self.refs) if self.refs else "none"
        pers = ", ".join(str(p) for p in self.periods) if self.periods else "none"
        if self.every:
            return (f"clock targets: every wake-up, and 1 ms past {refs} plus {pers} ms (every reference "
                    f"time and period of the config)")
        again = f"; {self.restarts} restart(s) on a new read" if self.restarts else ""
        return (f"clock targets: every wake-up, and 1 ms past {refs} plus {pers} ms (the reference times "
                f"and periods the code read{again})")


def deadlines_of(cfg: Config, read, restarts: int = 0) -> Deadlines:
    """The :class:`Deadlines` of the fields in ``read`` for ``cfg``: the reference times read, and
    the values of the periods read with the rate period (a constant of the model's own sync, read
    with ``time_last_bitmap_sync``), zero periods left out."""
    read = frozenset(read)
    refs = tuple(f for f in TIME_FIELDS if f in read)
    was, _ON[0] = _ON[0], False          # the explorer's read, not the code's
    try:
        pers = {getattr(cfg, f) for f in PERIOD_FIELDS if f in read}
    finally:
        _ON[0] = was
    if "time_last_bitmap_sync" in read:
        pers.add(RATE_PERIOD_MS)
    return Deadlines(refs, tuple(sorted(pers - {0})), read, restarts)


def all_deadlines(cfg: Config) -> Deadlines:
    """Every reference time and period of the config (the clock targets without the reduction)."""
    return replace(deadlines_of(cfg, set(TIME_FIELDS) | set(PERIOD_FIELDS)), every=True)


class NewDeadline(Exception):
    """A step read a reference time or period not among the run's deadlines: the run starts again."""

    def __init__(self, read):
        super().__init__(f"a step read {sorted(read)}")
        self.read = frozenset(read)


def start() -> None:
    """Forget what was read (a new run)."""
    READ.clear()


__all__ = ["DeadlineConfig", "Deadlines", "NewDeadline", "READ", "all_deadlines", "deadline_config",
           "deadlines_of", "start", "watch_mig"]
