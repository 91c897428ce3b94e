"""The bounds of an exploration: the world explored and how many environment moves it may make.

Everything the explorer does not enumerate is fixed here and printed with every verdict, so
"exhaustive within bounds B" says exactly which B.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from dirtyproof.impl.config import KVM_MODES, Config
from dirtyproof.impl.geometry import BlockSpec, Geometry


def default_geometry() -> Geometry:
    """The explored world: a 4-page fast-path block (4-bit words) of two 2-page chunks, then a
    2-page slow-path block in its own memslot.

    The smallest world holding every mechanism the corpus exercises: the fast path's word xchg and
    its lazily owed chunk clear (two chunks, so a chunk can be confused with its neighbour), the
    slow path's per-page sync (where background-v1 ORs ``shadow_bmap``), two memslots (one GET and
    one OR per slot), and a gap page between the blocks."""
    return Geometry((BlockSpec("ram0", 0, 4, 1), BlockSpec("odd0", 5, 2, 1)), clear_bmap_shift=1, word_bits=4)


def fast_geometry() -> Geometry:
    """The smaller world of the portfolio's two-move entries: the default world's fast-path block
    alone (4 pages, 4-bit words, two 2-page chunks, one memslot).

    Two moves on the default world cost 3-5 times the states of one (every write lands on 6
    pages, paths are longer); the bugs two moves find there are in the fast path's word xchg
    and chunk clears (a CLEAR mask, a lock taken inside a sync), which this block holds."""
    return Geometry((BlockSpec("ram0", 0, 4, 1),), clear_bmap_shift=1, word_bits=4)


def slow_geometry() -> Geometry:
    """The world of the portfolio's entry with a preemption and two moves: the default world's
    slow-path block alone, at its own pages (``odd0``, pages 5-6, one memslot, 4-bit words).

    The fast-path entries leave out the slow path's per-page sync, which is the block where the
    watcher's background sync keeps ``shadow_bmap`` page by page; one block keeps a preemption
    with two moves affordable on every design (every write lands on 2 pages, paths are short),
    and its pages keep their numbers in the default world, so counterexamples read alike."""
    return Geometry((BlockSpec("odd0", 5, 2, 1),), clear_bmap_shift=1, word_bits=4)


def page_geometry() -> Geometry:
    """The world of the ``deep`` bound's four-move entry: one page of the slow-path block
    (``odd0``, page 5, one memslot, 4-bit words).

    Four moves on the 2-page block cost more than a deep run can spend; one page keeps every
    step of the slow path's per-page sync (where background-v1 ORs ``shadow_bmap`` and its
    watcher's background sync runs page by page) with the fewest places for each write."""
    return Geometry((BlockSpec("odd0", 5, 1, 1),), clear_bmap_shift=1, word_bits=4)


def default_config(kvm_mode: str = "manual") -> Config:
    """The explored config: one vCPU (vCPUs are interchangeable writers), bursts of 2 pages,
    auto-converge on with QEMU's periods (1 s rate period, 5 s timer, 1 s watcher poll, 5 s
    watcher idle, 3 s iterate-sync), and switchover only when nothing is pending: then one write
    before an exact sync is enough for the sync not to complete (the iteration goes on), which a
    larger threshold would make cost one write per page of it."""
    return Config(geometry=default_geometry(), kvm_mode=kvm_mode, vcpus=1, burst=2, switchover_pages=0)


@dataclass(frozen=True)
class Bounds:
    """How many environment moves a path may make, and how deep it may go.

    ``guest_writes``/``device_writes``: vCPU and device writes (any page each); ``clock_moves``:
    moves of the clock to a time that can change what a thread does (moves to the next wake-up
    when no thread can run are free: time simply passes); ``cancels``: cancel-and-restart;
    ``moves``: all of these together on one path; ``max_depth``: paths are cut there (then the
    result is not exhaustive); ``max_states``: the search stops there (likewise);
    ``preemptions``: how many times a path may switch away from a thread that could go on
    (``None``: any number). Switching when the running thread blocks, sleeps or exits is free,
    and so is every switch until it steps again, even once a clock move has woken it; with
    ``wakeup_preemption``, so is a switch to a thread that has not stepped since it was made
    runnable (started, woken by a clock move, unblocked by a lock's release): it may take over
    at once or later, as a woken thread starts on another CPU (docs/explore.md, "The preemption
    bound")."""

    guest_writes: int = 2
    device_writes: int = 1
    clock_moves: int = 2
    cancels: int = 1
    moves: int = 2
    max_depth: int = 200
    max_states: int = 2_000_000
    preemptions: int | None = None
    wakeup_preemption: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name == "preemptions":
                continue
            if f.name == "wakeup_preemption":
                if not isinstance(v, bool):
                    raise ValueError(f"bound wakeup_preemption must be true or false, not {v!r}")
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"bound {f.name} must be a non-negative integer, not {v!r}")

    def budgets(self) -> tuple:
        """The starting budgets a path spends: (guest, device, clock, cancels, all moves,
        preemptions left (-1: unbounded), the thread that took the last step (kept only when
        preemptions are bounded: it decides whether the next switch is a preemption), and with
        wake-up preemption the threads runnable when that step was taken (``None`` without))."""
        wake = ((), ()) if self.wakeup_preemption and self.preemptions is not None else None
        return (self.guest_writes, self.device_writes, self.clock_moves, self.cancels, self.moves,
                -1 if self.preemptions is None else self.preemptions, None, wake)

    def to_json(self) -> dict:
        """A JSON-able form."""
        return asdict(self)

    def with_(self, **kw) -> "Bounds":
        """A copy with some bounds changed."""
        return replace(self, **kw)


def describe_world(cfg: Config) -> str:
    """One line naming the world: blocks, memslots, chunk size, word width, KVM mode and the config
    values that shape the run."""
    geo = cfg.geometry
    blocks = ", ".join(f"{b.name}@{b.offset}+{b.pages}/{b.slots} slot{'s' if b.slots > 1 else ''}"
                       f"{' fast' if b.fast_path else ' slow'}" for b in geo.blocks)
    return (f"blocks [{blocks}], chunk {geo.chunk_pages} pages, word {geo.word_bits} bits, "
            f"kvm_mode={cfg.kvm_mode}, vcpus={cfg.vcpus}, burst={cfg.burst}, "
            f"switchover_pages={cfg.switchover_pages}, auto_converge={cfg.auto_converge}, "
            f"periods ms: timer {cfg.dirty_sync_timer_ms}, watcher poll {cfg.watcher_poll_ms} idle "
            f"{cfg.watcher_idle_ms}, iterate {cfg.iterate_sync_ms}")


def describe_bounds(b: Bounds) -> str:
    """One line naming the bounds."""
    return (f"guest_writes={b.guest_writes}, device_writes={b.device_writes}, clock_moves={b.clock_moves}, "
            f"cancels={b.cancels}, moves={b.moves} in all, max_depth={b.max_depth}"
            + ("" if b.preemptions is None else f", preemptions={b.preemptions}")
            + (" (a switch to a thread that has not stepped since it was made runnable free)"
               if b.wakeup_preemption and b.preemptions is not None else ""))


__all__ = ["Bounds", "default_config", "default_geometry", "fast_geometry", "slow_geometry", "describe_world", "describe_bounds", "KVM_MODES"]
