"""Hypothesis strategies for the hunter's worlds: small geometries, KVM modes and configs.

Worlds are kept small so a step is cheap and a counterexample short: at most one 64-page
fast-path block (64 pages is the smallest aligned block) and up to two short unaligned
slow-path blocks, a clear_bmap chunk of 1 to 8 pages, every KVM dirty-log mode.
"""
from __future__ import annotations

from hypothesis import strategies as st

from dirtyproof.impl import BlockSpec, Config, Geometry
from dirtyproof.impl.config import KVM_MODES
from dirtyproof.impl.scheduler import NO_LIFECYCLE_STEP, lifecycle_choice


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


def hot_pages(geo: Geometry) -> list[int]:
    """Eight pages worth writing often: the first pages and the last page of each block, interleaved."""
    hot: list[int] = []
    for rank in (0, 1, -1, 2):
        for b in geo.blocks:
            p = b.offset + rank if rank >= 0 else b.end - 1
            if p < b.end and p not in hot:
                hot.append(p)
    return [hot[i % len(hot)] for i in range(8)]


# ----------------------------------------------------------------------------------------------
# Seeded "swarm" schedules for deep states (the hunt's first search, see ``runner.schedule_sweep``).

# Small worlds for the sweep, taken in turn: a slow-path block alone (4 pages, one slot), a
# fast-path block with a short slow-path one, a slow-path block over two memslots, and a lone
# fast-path block. Few pages keep an iteration, and so a counterexample, short.
SWEEP_GEOMETRIES = (
    Geometry((BlockSpec("odd0", 1, 4, 1),), 0),
    Geometry((BlockSpec("ram0", 0, 64, 1), BlockSpec("odd0", 65, 3, 1)), 1),
    Geometry((BlockSpec("odd0", 1, 6, 2),), 1),
    Geometry((BlockSpec("ram0", 0, 64, 1),), 0),
)


def sweep_config(i: int) -> Config:
    """The world of sweep schedule ``i``: geometries in turn, then the switchover point (none
    pending, or two pages below the guest: an exact sync soon after the first sends), then the
    KVM mode."""
    geo = SWEEP_GEOMETRIES[i % len(SWEEP_GEOMETRIES)]
    rest = i // len(SWEEP_GEOMETRIES)
    switchover = (0, geo.total_pages - 2)[rest % 2]
    return Config(geometry=geo, kvm_mode=KVM_MODES[(rest // 2) % len(KVM_MODES)], vcpus=1, burst=2,
                  switchover_pages=switchover)


# Every PLAIN_EVERY-th sweep schedule is the plain random scheduler of ``dirtyproof run`` on one
# of its named worlds (every KVM mode, then the next world): the swarm's small worlds and drawn
# weights must not make the sweep narrower than the naive scheduler (the corpus mutant
# clear-mask-range loses a write in every plain default-world run, and in none of 200 swarm
# schedules; no swarm world has a fast-path block away from address 0).
PLAIN_EVERY = 4
PLAIN_STEPS = 2000


def is_plain(i: int) -> bool:
    """Whether sweep schedule ``i`` is a plain random run on the default world."""
    return i % PLAIN_EVERY == PLAIN_EVERY - 1


def sweep_arm(i: int, seed: int, steps: int):
    """Sweep schedule ``i``'s world and scheduler: a swarm schedule on :func:`sweep_config(i)`, or
    (every :data:`PLAIN_EVERY`-th) the plain :class:`RandomScheduler` on a named world."""
    from dirtyproof.impl.scheduler import RandomScheduler

    if is_plain(i):
        from dirtyproof.impl.geometry import PRESETS, named
        j = i // PLAIN_EVERY
        geo = named(PRESETS[(j // len(KVM_MODES)) % len(PRESETS)])
        return Config(geometry=geo, kvm_mode=KVM_MODES[j % len(KVM_MODES)]), RandomScheduler(seed, PLAIN_STEPS)
    return sweep_config(i), swarm_scheduler(seed, steps)


# Extra weight of a device write while a fast-path sync is between fetching an L2 word and
# clearing it (see ``_fetch_window``): the window is one atomic step wide.
FETCH_WINDOW_WEIGHT = 4.0
# Weight of the guest reporting a free page in a free-page-hinting world (a vCPU write's is 0.5-4).
HINT_WEIGHT = 1.5


def swarm_scheduler(seed: int, steps: int):
    """A :class:`RandomScheduler` whose weights are themselves drawn from ``seed`` (swarm testing):
    some schedules starve the migration thread while the clock leaps 5 s at a time (background
    syncs between sends), others write furiously or never use a device; half change the pace of the
    threads every few dozen steps, a third may cancel the migration once and start it again. Writes
    go mostly to the world's hot pages (:func:`hot_pages`), where the sender starts."""
    from dirtyproof.impl.scheduler import RandomScheduler

    class SwarmScheduler(RandomScheduler):
        """Seeded weights per schedule; otherwise the random scheduler's protocol."""

        def __init__(self) -> None:
            super().__init__(seed, steps, cancels=0)
            r = self.rng
            self._draw_pace()
            self.w_clock = r.choice((0.2, 0.6, 2.0))
            self.w_vcpu = r.choice((0.5, 2.0, 4.0))
            self.w_device = r.choice((0.0, 0.4, 2.0))
            self.clocks = r.sample((10, 100, 1000, 2500, 5001, 0), r.randint(1, 4))
            self.hot_pages = r.randint(1, 4)
            # a third of the schedules may cancel the migration once and start it again
            self.cancel_rate = r.choice((0.0, 0.0, 0.02))
            self.cancels_left = 1
            # half of the schedules change pace every few dozen steps: the migration thread
            # starved for a while, then running ahead (background syncs between sends)
            self.phase_len = r.choice((0, 0, 20, 60))

        def _draw_pace(self) -> None:
            """Weights of the migration thread and of the other threads (timer, watcher)."""
            r = self.rng
            self.w_mig = r.choice((0.3, 1.0, 3.0, 8.0))
            self.w_thread = r.choice((1.0, 3.0, 8.0))

        def _page(self, w) -> int:
            rng = self.rng
            if self.hot is None:
                self.hot = hot_pages(w.geometry)[:self.hot_pages]
            if rng.random() < 0.7:
                return rng.choice(self.hot)
            rb = rng.choice(w.blocks)
            return rb.offset + rng.randrange(rb.pages)

        @staticmethod
        def _fetch_window(w) -> list[int]:
            """Pages a device write could lose inside a fast-path sync: while a sync holds
            ``bitmap_mutex``, the sent pages (clear in ``bmap``) whose L2 bit is clear in an L2
            word that still has bits set (not fetched yet, or read and not yet zeroed)."""
            if w.sync_begin is None:
                return []
            pages = []
            for rb in w.blocks:
                if not rb.fast_path:
                    continue
                wb = rb.word_bits
                base = rb.offset // wb
                for k in range(rb.words()):
                    if not w.L2.word(base + k, wb):
                        continue
                    for p in range(rb.offset + wb * k, min(rb.offset + wb * (k + 1), rb.offset + rb.pages)):
                        if not w.L2.test(p) and not rb.bmap.test(p - rb.offset):
                            pages.append(p)
            return pages

        def next_choice(self, w):
            rng = self.rng
            self.n += 1
            free = self.n <= self.steps
            if self.phase_len and self.n % self.phase_len == 0:
                self._draw_pace()
            lifecycle = lifecycle_choice(w, free)
            if lifecycle is not NO_LIFECYCLE_STEP:
                return lifecycle
            if free and self.cancel_rate and self.cancels_left and w.can_cancel() \
                    and rng.random() < self.cancel_rate:
                self.cancels_left -= 1
                return ["mgmt", "cancel"]
            names, weights = [], []
            runnable = w.runnable_threads()
            for t in runnable:
                names.append(t)
                weights.append(self.w_mig if t == "migration" else self.w_thread)
            if w.vm_running:
                names += ["vcpu0", "device"]
                weights += [self.w_vcpu * (100 - w.throttle_pct) / 100, self.w_device]
                if w.balloon is not None:   # hinting worlds only: no extra draw elsewhere
                    names.append("guest-hint")
                    weights.append(HINT_WEIGHT)
            names.append("clock")
            weights.append(self.w_clock if free else 0.2)
            window = self._fetch_window(w) if self.w_device and w.vm_running else None
            if window:
                weights[names.index("device")] += FETCH_WINDOW_WEIGHT
            name = rng.choices(names, weights)[0]
            if name == "device" and window:
                return [name, window[0]]
            if name in ("vcpu0", "device", "guest-hint"):
                return [name, self._page(w)]
            if name == "clock":
                ms = rng.choice(self.clocks)
                if ms == 0 or not runnable:
                    wake = w.next_wakeup()
                    if wake is not None:
                        return ["clock", wake - w.clock_ms]
                    ms = ms or 1000
                return ["clock", ms]
            return [name, None]

    return SwarmScheduler()
