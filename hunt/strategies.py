"""Hypothesis strategies for the hunter's machine (small geometries, KVM modes and configs), and
which arm each schedule of the sweep runs (:func:`sweep_arm`; the swarm draws are in :mod:`.swarm`).

The machine's worlds are kept small so a step is cheap and a counterexample short: at most one
64-page fast-path block and up to two short unaligned slow-path blocks, a clear_bmap chunk of 1
to 8 pages, every KVM dirty-log mode.
"""
from __future__ import annotations

from hypothesis import strategies as st

from dirtyproof.impl import BlockSpec, Config, Geometry
from dirtyproof.impl.config import KVM_MODES

from .swarm import swarm_arm


@st.composite
def geometries(draw) -> Geometry:
    """A geometry of 0-1 aligned (fast path) and 0-2 unaligned (slow path) blocks, at least one.

    Shrinks toward a single one-page unaligned block with one memslot and 1-page chunks."""
    aligned = draw(st.integers(0, 1))
    unaligned = draw(st.integers(0 if aligned else 1, 2))
    shift = draw(st.integers(0, 3))
    blocks, off = [], 0
    if aligned:
        blocks.append(BlockSpec("ram0", 0, 64, draw(st.integers(1, 2))))
        off = 64
    for i in range(unaligned):
        gap = draw(st.integers(0, 3))
        pages = draw(st.integers(1, 12))
        slots = draw(st.integers(1, min(2, pages)))
        blocks.append(BlockSpec(f"odd{i}", off + gap, pages, slots))
        off += gap + pages
    return Geometry(tuple(blocks), shift)


@st.composite
def configs(draw) -> Config:
    """A world config: geometry, KVM mode, burst, and when the migration switches over.

    ``switchover_pages`` is either small (long iterations, the usual case) or a few pages below
    the guest's size, so an exact sync comes soon after the first pages are sent (a mid-migration
    sync with the VM running: what the periodic, iterate-sync and background designs need)."""
    geo = draw(geometries())
    mode = draw(st.sampled_from(KVM_MODES))
    total = geo.total_pages
    switchover = draw(st.one_of(st.integers(0, 4).map(lambda s: min(s, max(0, total - 2))),
                                st.integers(1, 8).map(lambda s: max(0, total - s))))
    burst = draw(st.integers(1, 8))
    auto_converge = draw(st.sampled_from([True, False]))
    return Config(geometry=geo, kvm_mode=mode, vcpus=1, burst=burst,
                  switchover_pages=switchover, auto_converge=auto_converge)


# A page argument: 0 is the page the sender read last; other small values pick one of a few
# "hot" pages (each block's first pages, where the sender starts, and last pages); larger ones
# any guest page.
page_selectors = st.one_of(st.integers(0, 7), st.integers(8, 1 << 12))

# Clock advances in ms; 0 means "to the next thread wake-up" (or 1000 ms if none sleeps).
clock_steps = st.sampled_from([0, 1000, 5001, 100, 2500, 10])

# Steps of a thread in one rule: usually one, sometimes a burst (sending a block takes many).
thread_bursts = st.one_of(st.just(1), st.integers(2, 64))

# What a thread runs until, in one rule: its next page read, KVM CLEAR, L2 fetch, or sync end.
THREAD_EVENTS = ("read", "clear", "fetch", "sync_end")
thread_events = st.sampled_from(THREAD_EVENTS)


# ----------------------------------------------------------------------------------------------
# Seeded "swarm" schedules for deep states (the hunt's first search, see ``runner.schedule_sweep``).

# Every PLAIN_EVERY-th sweep schedule is a long run on one of the named worlds (every KVM mode,
# then the next world): one in LONG_CYCLE of them the plain random scheduler of ``dirtyproof run``
# (the swarm's drawn worlds and weights must not make the sweep narrower than the naive
# scheduler: the corpus mutant clear-mask-range loses a write in every plain default-world run),
# the others the preemption arm (:mod:`.preempt`: a second syncing thread preempted inside its
# critical sections; the dev set's two timer races break in 10-18 % of its runs, 0-4 % of plain
# runs).
PLAIN_EVERY = 4
PLAIN_STEPS = 2000
LONG_CYCLE = 3


def is_long(i: int) -> bool:
    """Whether sweep schedule ``i`` is a long run on a named world (plain or preemption arm), not
    a swarm schedule: its counterexample shrinks less far, so a swarm failure is preferred."""
    return i % PLAIN_EVERY == PLAIN_EVERY - 1


def is_plain(i: int) -> bool:
    """Whether sweep schedule ``i`` is a plain random run on a named world."""
    return is_long(i) and (i // PLAIN_EVERY) % LONG_CYCLE == 0


def is_preempt(i: int) -> bool:
    """Whether sweep schedule ``i`` is a preemption-arm run on a named world."""
    return is_long(i) and (i // PLAIN_EVERY) % LONG_CYCLE != 0


def arm_name(i: int) -> str:
    """``swarm``, ``plain`` or ``preempt``: the arm sweep schedule ``i`` runs."""
    return "plain" if is_plain(i) else "preempt" if is_preempt(i) else "swarm"


def named_world(j: int) -> Config:
    """The ``j``-th world of the long runs: each KVM mode on one named world (the default
    world first), then the next named world."""
    from dirtyproof.impl.geometry import PRESETS, named
    return Config(geometry=named(PRESETS[(j // len(KVM_MODES)) % len(PRESETS)]), kvm_mode=KVM_MODES[j % len(KVM_MODES)])


def sweep_arm(i: int, seed: int, steps: int):
    """Sweep schedule ``i``'s config and scheduler: a swarm schedule whose world, config, weights
    and features off are all drawn from ``seed`` (:func:`swarm.swarm_arm`), or (every
    :data:`PLAIN_EVERY`-th) a long run on a named world: the plain :class:`RandomScheduler` one
    time in :data:`LONG_CYCLE`, else the preemption arm (:func:`preempt.preempt_arm`)."""
    from dirtyproof.impl.scheduler import RandomScheduler

    from .preempt import preempt_arm

    if is_long(i):
        q = i // PLAIN_EVERY
        if is_plain(i):
            return named_world(q // LONG_CYCLE), RandomScheduler(seed, PLAIN_STEPS)
        return preempt_arm(q - q // LONG_CYCLE - 1, seed)
    return swarm_arm(seed, steps)
