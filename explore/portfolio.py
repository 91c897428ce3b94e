"""The explorer's default bound: a small portfolio of worlds and bounds, each printed with its verdict.

One world with one bound cannot be both cheap enough for the gate and large enough for every
corpus bug: the state space grows with the path length to the power of the moves allowed. The
default is therefore a few entries, each a world (geometry and config) with its own bounds and
KVM modes, explored in order; ``dirtyproof explore`` without bound flags, ``check`` and ``prove``
(for a design without a per-page encoding) run all of them. "exhaustive within bounds B" is said
per entry, B naming that entry's world and bounds. docs/explore.md says why each entry is there.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

from dirtyproof.impl.config import KVM_MODES, Config

from .bounds import Bounds, default_config, fast_geometry, page_geometry, slow_geometry


@dataclass(frozen=True)
class Entry:
    """One world and bound of the portfolio: ``name`` (printed), the world's ``config`` (its KVM
    mode replaced by each of ``modes``), the ``bounds``, and ``why`` it is there (one line)."""

    name: str
    config: Config
    bounds: Bounds
    modes: tuple[str, ...]
    why: str

    def config_for(self, mode: str) -> Config:
        """The entry's world in KVM ``mode``."""
        return replace(self.config, kvm_mode=mode)

    def runs(self) -> list[tuple[str, Config]]:
        """``(label, config)`` of each exploration of the entry: one per mode."""
        return [(f"{self.name}/{m}", self.config_for(m)) for m in self.modes]


def default_portfolio() -> tuple[Entry, ...]:
    """The default bound (docs/explore.md, "The default bound"), in the order it is explored: every
    interleaving of the threads with no environment move, then with one move of any kind and at
    most one preemption, each in every KVM mode; then two moves of restricted kinds on the
    fast-path block alone, without preemption, each in the one KVM mode its bugs need; last, a
    write and a clock move with one preemption on the slow-path block alone, in legacy mode."""
    world = default_config("manual")
    fast = replace(world, geometry=fast_geometry())
    slow = replace(world, geometry=slow_geometry())
    return (
        Entry("threads", world, Bounds(guest_writes=0, device_writes=0, clock_moves=0, cancels=0, moves=0),
              tuple(KVM_MODES), "every interleaving of the threads, time passing only when all of them sleep"),
        Entry("one-move", world, Bounds(guest_writes=1, device_writes=1, clock_moves=1, cancels=1, moves=1,
                                        preemptions=1),
              tuple(KVM_MODES), "one vCPU write, device write, clock move or cancel anywhere, a thread "
              "preempted at most once"),
        # two moves, on the fast-path block alone and without preemption (a thread runs until it
        # blocks, sleeps or exits): a second write in a window the first one opened (a CLEAR
        # mask, manual mode only: the mode whose CLEAR it is), and a write with a clock move
        # (a sync that runs only once an iteration goes on and a period has passed)
        Entry("two-writes", fast, Bounds(guest_writes=2, device_writes=0, clock_moves=0, cancels=0, moves=2,
                                         preemptions=0),
              ("manual",), "two vCPU writes on the fast-path block, no preemption"),
        Entry("write-clock", fast, Bounds(guest_writes=1, device_writes=0, clock_moves=1, cancels=0, moves=2,
                                          preemptions=0),
              ("legacy",), "a vCPU write and a clock move on the fast-path block, no preemption"),
        # last (earlier entries keep finding what they find): the same two moves with one
        # preemption, on the slow-path block alone, so that a second thread woken by the clock
        # (the watcher past its idle time, the timer) may interrupt a sync the write made
        # necessary, between its memslot GET and its block's sync (forget-iter-fold's flip of
        # sync_mode). Legacy mode: what it looks for sits above KVM's GET and CLEAR (the series'
        # fold of iter_bmap), and legacy's sync has no CLEAR steps to interleave with
        Entry("write-clock-preempt", slow, Bounds(guest_writes=1, device_writes=0, clock_moves=1, cancels=0,
                                                  moves=2, preemptions=1),
              ("legacy",), "a vCPU write and a clock move on the slow-path block, a thread preempted at most once"),
    )


def deep_entries() -> tuple[Entry, ...]:
    """What the ``deep`` bound adds after the default bound (docs/explore.md, "The deep bound"):
    two vCPU writes and two clock moves on one page of the slow-path block, no counted
    preemption but wake-up preemption, legacy mode. Background-v1's loss needs all four moves (two
    background syncs of its watcher, the second after a write to a page already sent, and an
    exact sync that does not complete); a bound of three of them finds nothing."""
    page = replace(default_config("legacy"), geometry=page_geometry())
    return (
        Entry("four-moves", page, Bounds(guest_writes=2, device_writes=0, clock_moves=2, cancels=0, moves=4,
                                         preemptions=0, wakeup_preemption=True),
              ("legacy",), "two vCPU writes and two clock moves on one slow-path page, a woken thread taking "
              "over at any step"),
    )


# The bound check and prove run: the default bound, or (``threads``) its first entry only, for
# test suites that check many designs and would otherwise spend minutes on each, or (``deep``) the
# default bound and then :func:`deep_entries` (minutes per design: a single run that cannot be
# split over cores); said in every table and report, and a value other than these is bad input.
BOUND_ENV = "DIRTYPROOF_EXPLORE_BOUND"
BOUND_CHOICES = ("default", "threads", "deep")


def chosen_bound() -> str:
    """The bound ``$DIRTYPROOF_EXPLORE_BOUND`` asks for (``default`` when unset); ``ValueError``
    naming the choices otherwise."""
    v = os.environ.get(BOUND_ENV, "").strip() or "default"
    if v not in BOUND_CHOICES:
        raise ValueError(f"${BOUND_ENV}={v!r}: expected one of {', '.join(BOUND_CHOICES)}")
    return v


# The gate's own default: ``check`` and ``prove`` must answer within a minute or so on 2 cores.
# The whole default bound takes 13-85 s of CPU per shipped design (s13: 324 s for the six), so
# for one design (a reviewer's own: ``check --design mine.py:Mine``) they explore all of it (52 s
# of wall time for ``check --design periodic``, the costliest), and for several (the six shipped
# designs: the CI gate) its ``threads`` entry, unless ``--explore-bound`` or the environment
# asks otherwise.
GATE_DEFAULT = "threads"
ONE_DESIGN_DEFAULT = "default"


def gate_default(designs: int) -> str:
    """The bound ``check`` and ``prove`` explore by default when judging ``designs`` designs: the
    whole default bound for one, the ``threads`` entry for more."""
    return ONE_DESIGN_DEFAULT if designs == 1 else GATE_DEFAULT


def apply_bound_flag(flag: str | None, default: str = GATE_DEFAULT) -> str:
    """Settle the bound of a ``check`` or ``prove`` run before any work: ``flag`` (their
    ``--explore-bound``), else ``$DIRTYPROOF_EXPLORE_BOUND``, else ``default``; the choice is put
    in the environment so that worker processes explore the same. ``ValueError`` if it is not one
    of :data:`BOUND_CHOICES`."""
    env = os.environ.get(BOUND_ENV, "").strip()
    v = flag if flag is not None else (env or default)
    if v not in BOUND_CHOICES:
        where = "--explore-bound" if flag is not None else f"${BOUND_ENV}"
        raise ValueError(f"{where}={v!r}: expected one of {', '.join(BOUND_CHOICES)}")
    os.environ[BOUND_ENV] = v
    return v


def gate_portfolio() -> tuple[Entry, ...]:
    """The portfolio check, prove and ``explore`` without bound flags run (:func:`chosen_bound`)."""
    entries = default_portfolio()
    bound = chosen_bound()
    if bound == "deep":
        return entries + deep_entries()
    return entries if bound == "default" else entries[:1]


def describe(entries) -> list[str]:
    """One line per entry: its name, modes, bounds and why."""
    from .bounds import describe_bounds, describe_world
    return [f"{e.name} ({', '.join(e.modes)}): "
            f"{describe_world(e.config_for(e.modes[0])).replace(f'kvm_mode={e.modes[0]}, ', '')}; "
            f"{describe_bounds(e.bounds)}: {e.why}" for e in entries]


__all__ = ["Entry", "default_portfolio", "deep_entries", "gate_portfolio", "gate_default", "chosen_bound", "describe", "BOUND_ENV", "BOUND_CHOICES"]
