"""Swarm schedules (Groce et al., "Swarm Testing", ISSTA 2012): every schedule draws its own world,
config, actor weights and a random subset of features switched off, all from its seed.

One fixed, "reasonable" mix of actions spreads every schedule over the same middle ground; a bug
that needs one actor to be starved, another to run a long way alone, or a feature to stay quiet
(no device writes to wake a sync early, no cancel to reset the attempt) is then rare in every
schedule. Swarm testing instead gives each schedule a narrow, different configuration, so some
schedules sit in each corner. What is drawn (:func:`draw`):

- the **world** (:func:`draw_geometry`): one to three RAMBlocks, each on the fast path (a whole
  number of words, word-aligned, at address 0 or away from it) or the slow path (a few pages, any
  offset), one to three KVM memslots each, a ``clear_bmap`` chunk of 1-8 pages, and the host's
  word width (BITS_PER_LONG 4-64: the model allows the narrow widths so a small world keeps a
  fast-path block; docs/explore.md says why the width changes nothing for any one page); a third
  of the worlds are one short block (the small-scope hypothesis: short counterexamples);
- the **config** (:func:`draw_config`): KVM dirty-log mode, vCPUs, burst, switchover point,
  auto-converge and the throttle's parameters, the periods of the periodic timer, the
  background watcher and the iterate-sync design;
- the **schedule**: weights of the migration thread, of each other thread (the timer, the
  watcher, any thread a user's design adds), of the guest's writes (shared by its vCPUs), of
  device writes and of the clock; the clock's step sizes (including each drawn period, plus
  1 ms); how sticky a running thread is (it keeps the CPU with that probability: whole critical
  sections); how often a thread that just stepped is preempted, and for how many steps (a
  timer or watcher sync left half done while the others run, or the migration thread kept off
  the CPU while time passes); and the **features switched off** (:data:`FEATURES`), each with
  probability :data:`FEATURE_OFF`.

The draws depend on the seed alone, so a schedule is replayable from ``(seed, steps)``; the
counterexample's trace records the drawn config (world included) and its choices, which is all
``dirtyproof replay`` needs. :meth:`SwarmDraw.describe` says what was drawn, for reports.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from dirtyproof.impl import BlockSpec, Config, Geometry
from dirtyproof.impl.config import DIRTY_RING, KVM_MODES
from dirtyproof.impl.scheduler import NO_LIFECYCLE_STEP, NOVCPU_WEIGHT, RandomScheduler, lifecycle_choice
from dirtyproof.impl.world import NOVCPU

# Features a schedule may switch off (Groce et al.: omitting a feature lets the others reach
# states it would interrupt). Each is off with probability FEATURE_OFF.
FEATURES = (
    "device-writes",    # no QEMU-side (DMA) writes: L2 is set by log syncs only
    "clock-leaps",      # the clock moves only to the next thread wake-up, never by a drawn amount
    "cancel",           # no cancel-and-restart
    "vcpus",            # one vCPU only
    "hot-pages",        # writes spread over every page, not mostly the few where the sender starts
    "fetch-aim",        # device writes not aimed at a sync's fetch window
    "phases",           # thread weights fixed for the whole schedule (else redrawn every few dozen steps)
    "sticky",           # no stickiness: every step is a fresh weighted draw
    "preemption",       # no thread is ever descheduled for a while after one of its steps
    "auto-converge",    # auto-converge off: no throttle, no periodic timer, no iterate-sync syncs
    "fast-path",        # no fast-path (word-aligned) block in the world
    "slow-path",        # no slow-path block in the world (if fast-path is also off, this one wins)
    "several-blocks",   # one RAMBlock only
)
FEATURE_OFF = 1 / 2

# Worlds that are a single short block (see ``draw_geometry``).
TINY_WORLDS = 1 / 3
# Weight of the guest reporting a free page in a free-page-hinting world (a vCPU write's is 0.5-4).
HINT_WEIGHT = 1.5

# Thread weights a schedule draws from (per thread, and again per phase).
THREAD_WEIGHTS = (0.3, 1.0, 3.0, 8.0)
# Clock steps in ms; 0 means "to the next thread wake-up".
CLOCK_STEPS = (10, 100, 1000, 2500, 5001, 0)


@dataclass(frozen=True)
class SwarmDraw:
    """What one swarm schedule drew: the world's config and the scheduler's parameters."""

    config: Config
    off: frozenset = field(default_factory=frozenset)    # the features switched off
    w_mig: float = 1.0
    w_threads: tuple = ()            # ((thread name, weight), ...) for the named threads
    w_other: float = 3.0             # any other thread (a user's design may add one)
    w_vcpu: float = 2.0              # the guest's writes, shared by its vCPUs
    w_device: float = 0.4
    w_clock: float = 0.6
    clocks: tuple = (1000,)
    hot_pages: int = 4
    hot_rate: float = 0.7
    cancel_rate: float = 0.0
    cancels: int = 0
    phase_len: int = 0
    stickiness: float = 0.0
    preempt_rate: float = 0.0        # after a thread's step: the chance it is descheduled ...
    preempt_steps: int = 0           # ... for this many of the schedule's steps

    def describe(self) -> str:
        """One line: what the schedule drew (weights, features off), for a report."""
        c = self.config
        threads = ", ".join(f"{n} {w:g}" for n, w in self.w_threads)
        return (f"swarm: {c.vcpus} vCPU(s) at {self.w_vcpu:g}, migration {self.w_mig:g}, {threads}, "
                f"device {self.w_device:g}, clock {self.w_clock:g} by {list(self.clocks)} ms, "
                f"stickiness {self.stickiness:g}, preemption {self.preempt_rate:g} for {self.preempt_steps}, phases {self.phase_len or 'none'}, "
                f"cancel {self.cancel_rate:g} x{self.cancels}; off: {', '.join(sorted(self.off)) or 'none'}")


def _rng(seed: int, what: str) -> random.Random:
    """A generator for one part of schedule ``seed``'s draw (parts do not shift one another)."""
    return random.Random(f"dirtyproof-swarm-{what}-{seed}")


def draw_geometry(r: random.Random, off: frozenset = frozenset()) -> Geometry:
    """A world of 1-3 blocks, each on the fast path (one word, word-aligned, sometimes a word away
    from the previous block) or the slow path (1-5 pages, 0-3 pages after the previous block,
    never word-aligned in both offset and length), 1-3 memslots each, a 1-8 page chunk, and a word
    width of 4-64 bits (at 32 or 64 bits at most one fast-path block). One world in four is
    larger: two-word fast-path blocks, slow-path blocks of up to 12 pages. Small worlds keep a
    counterexample short (every page sent is a few steps of it). The features ``fast-path``,
    ``slow-path`` and ``several-blocks`` switched off in ``off`` leave out what they name (with
    both paths off, the world has slow-path blocks only)."""
    wb = r.choice((4, 4, 8, 8, 16, 32, 64))
    if r.random() < TINY_WORLDS:
        # the small-scope hypothesis: one short block finds most bugs, with the shortest counterexamples
        if "fast-path" not in off and ("slow-path" in off or r.random() < 0.5):
            wb = r.choice((4, 8))
            return Geometry((BlockSpec("ram0", 0, wb, r.randint(1, 2)),), r.randint(0, 2), wb)
        pages = r.randint(3, 6)
        return Geometry((BlockSpec("odd0", r.randint(1, 3), pages, r.randint(1, 2)),), r.randint(0, 2), wb)
    p_fast = 0.0 if "fast-path" in off else 1.0 if "slow-path" in off else 0.5
    nblocks = 1 if "several-blocks" in off or (p_fast == 1.0 and wb >= 32) else r.choice((1, 2, 3))
    shift = r.randint(0, 3)
    big = r.random() < 0.25
    blocks, off, wide_fast = [], 0, False
    for k in range(nblocks):
        fast = r.random() < p_fast and not (wb >= 32 and wide_fast)
        if fast:
            wide_fast = True
            pages = wb * (2 if big and wb <= 16 else 1)
            off = -(-off // wb) * wb + (wb if r.random() < 0.3 else 0)
            name = f"ram{k}"
        else:
            pages = r.randint(1, 12) if big else r.randint(2, 6)
            off += r.randint(0, 3)
            if off % wb == 0 and pages % wb == 0:
                off += 1
            name = f"odd{k}"
        blocks.append(BlockSpec(name, off, pages, r.randint(1, min(3, pages))))
        off += pages
    return Geometry(tuple(blocks), shift, wb)


def draw_config(r: random.Random, geo: Geometry, off: frozenset) -> Config:
    """A config for ``geo``: KVM mode, vCPUs (one if ``vcpus`` is off), burst, switchover point
    (none or a few pages pending: long iterations; or a few pages below the guest's size: an exact
    sync soon after the first sends), auto-converge (off if ``auto-converge`` is off) with its throttle, and the
    periods of the timer, the watcher and iterate-sync (QEMU's defaults half of the time)."""
    total = geo.total_pages
    if r.random() < 0.5:
        switchover = min(r.choice((0, 0, 1, 2, 4)), max(0, total - 2))
    else:
        switchover = total - r.randint(1, max(1, min(8, total - 1)))
    return Config(
        geometry=geo, kvm_mode=r.choice(KVM_MODES),
        vcpus=1 if "vcpus" in off else r.randint(1, 3),
        burst=r.choice((1, 2, 2, 4, 8)), switchover_pages=switchover,
        auto_converge="auto-converge" not in off,
        throttle_trigger_threshold=r.choice((50, 50, 10, 90)),
        cpu_throttle_initial=r.choice((20, 20, 5, 60)),
        cpu_throttle_increment=r.choice((10, 10, 30)),
        cpu_throttle_tailslow=r.random() < 0.25,
        max_cpu_throttle=r.choice((99, 99, 50)),
        dirty_sync_timer_ms=r.choice((5000, 5000, 1000, 250, 50)),
        watcher_poll_ms=r.choice((1000, 1000, 250, 50)),
        watcher_idle_ms=r.choice((5000, 5000, 1000, 100)),
        iterate_sync_ms=r.choice((3000, 3000, 1000, 100)),
    )


def draw_ring(cfg: Config, seed: int, overrides: dict | None = None) -> Config:
    """``cfg`` with, in a dirty ring world, the ring size (1-8 entries: a full ring is reached in
    small worlds) and the vCPU buffer (0-3 entries) drawn from schedule seed ``seed`` by an RNG of
    their own, so that every other draw of the seed stays as it was; fields ``overrides`` fixes
    are kept. Other worlds are returned as they are."""
    if cfg.kvm_mode != DIRTY_RING:
        return cfg
    r = random.Random(f"dirty-ring/{seed}")
    kw = {"dirty_ring_size": r.choice((1, 2, 4, 4, 8)), "dirty_ring_buffer": r.choice((0, 1, 2, 2, 3))}
    return dataclasses.replace(cfg, **{k: v for k, v in kw.items() if k not in (overrides or {})})


def draw(seed: int) -> SwarmDraw:
    """Everything schedule ``seed`` runs with: features off, world, config, weights."""
    r = _rng(seed, "features")
    off = frozenset(f for f in FEATURES if r.random() < FEATURE_OFF)
    geo = draw_geometry(_rng(seed, "world"), off)
    cfg = draw_config(_rng(seed, "config"), geo, off)
    r = _rng(seed, "weights")
    periods = (cfg.dirty_sync_timer_ms + 1, cfg.watcher_poll_ms, cfg.watcher_idle_ms + 1, cfg.iterate_sync_ms + 1)
    clocks = tuple(r.sample(CLOCK_STEPS + periods, r.randint(1, 4)))
    return SwarmDraw(
        config=cfg, off=off,
        w_mig=r.choice(THREAD_WEIGHTS),
        w_threads=(("timer", r.choice(THREAD_WEIGHTS)), ("watcher", r.choice(THREAD_WEIGHTS))),
        w_other=r.choice(THREAD_WEIGHTS),
        w_vcpu=r.choice((0.5, 2.0, 4.0)),
        w_device=0.0 if "device-writes" in off else r.choice((0.4, 2.0)),
        w_clock=r.choice((0.2, 0.6, 2.0)),
        clocks=(0,) if "clock-leaps" in off else clocks,
        hot_pages=r.randint(1, 4),
        hot_rate=0.0 if "hot-pages" in off else r.choice((0.5, 0.7, 0.9)),
        cancel_rate=0.0 if "cancel" in off else r.choice((0.002, 0.01, 0.03)),
        cancels=0 if "cancel" in off else r.randint(1, 2),
        phase_len=0 if "phases" in off else r.choice((20, 60)),
        stickiness=0.0 if "sticky" in off else r.choice((0.3, 0.6, 0.9)),
        preempt_rate=0.0 if "preemption" in off else r.choice((0.01, 0.03, 0.1)),
        preempt_steps=r.choice((10, 30, 100)),
    )


# Extra weight of a device write while a fast-path sync is between fetching an L2 word and
# clearing it (see ``fetch_window``): the window is one atomic step wide.
FETCH_WINDOW_WEIGHT = 4.0


def hot_pages(geo: Geometry) -> list[int]:
    """Eight pages worth writing often: the first pages and the last page of each block, interleaved."""
    hot: list[int] = []
    for rank in (0, 1, -1, 2):
        for b in geo.blocks:
            p = b.offset + rank if rank >= 0 else b.end - 1
            if p < b.end and p not in hot:
                hot.append(p)
    return [hot[i % len(hot)] for i in range(8)]


def fetch_window(w) -> list[int]:
    """Pages a device write could lose inside a fast-path sync: while a sync is under way, the
    sent pages (clear in ``bmap``) whose L2 bit is clear in an L2 word that still has bits set (not
    fetched yet, or read and not yet zeroed)."""
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


class SwarmScheduler(RandomScheduler):
    """The random scheduler's protocol with a :class:`SwarmDraw`'s weights and features: per
    step, a management step when one is owed (start, restart, switchover), maybe a cancel, else
    one weighted draw among the runnable threads (the last one kept with the drawn stickiness),
    each vCPU, the device and the clock."""

    def __init__(self, seed: int, steps: int, swarm: SwarmDraw) -> None:
        super().__init__(seed, steps, cancels=swarm.cancels, hot_pages=swarm.hot_pages)
        self.swarm = swarm
        self.w_threads = dict(swarm.w_threads)
        self.w_mig = swarm.w_mig
        self.last_thread: str | None = None
        self.descheduled: dict[str, int] = {}    # thread -> step number it may run again at

    def _redraw_pace(self) -> None:
        """A new phase: the threads' weights drawn again (the migration thread starved for a
        while, then running ahead)."""
        r = self.rng
        self.w_mig = r.choice(THREAD_WEIGHTS)
        self.w_threads = {n: r.choice(THREAD_WEIGHTS) for n in self.w_threads}

    def _page(self, w) -> int:
        rng = self.rng
        if self.hot is None:
            self.hot = hot_pages(w.geometry)[:self.hot_pages]
        if rng.random() < self.swarm.hot_rate:
            return rng.choice(self.hot)
        rb = rng.choice(w.blocks)
        return rb.offset + rng.randrange(rb.pages)

    def next_choice(self, w):
        """The next choice for ``w``, or ``None`` when the migration is over."""
        rng, sw = self.rng, self.swarm
        self.n += 1
        free = self.n <= self.steps
        if sw.phase_len and self.n % sw.phase_len == 0:
            self._redraw_pace()
        lifecycle = lifecycle_choice(w, free)
        if lifecycle is not NO_LIFECYCLE_STEP:
            return lifecycle
        if free and sw.cancel_rate and self.cancels_left and w.can_cancel() and rng.random() < sw.cancel_rate:
            self.cancels_left -= 1
            return ["mgmt", "cancel"]
        if not free:
            self.descheduled.clear()        # the free run is over: every thread may finish
        runnable = w.runnable_threads()
        if self.descheduled:
            runnable = [t for t in runnable if self.descheduled.get(t, 0) <= self.n]
        if self.last_thread in runnable and sw.stickiness and rng.random() < sw.stickiness:
            return [self.last_thread, None]
        names, weights = [], []
        for t in runnable:
            names.append(t)
            weights.append(self.w_mig if t == "migration" else self.w_threads.get(t, sw.w_other))
        if w.vm_running:
            # the guest's write rate is drawn as a whole and shared by its vCPUs
            vcpus = w.config.vcpus
            share = sw.w_vcpu * (100 - w.throttle_pct) / 100 / vcpus
            for k in range(vcpus):
                names.append(f"vcpu{k}")
                weights.append(share)
            names.append("device")
            weights.append(sw.w_device)
            if w.balloon is not None:   # free-page-hinting worlds only: no extra draw elsewhere
                names.append("guest-hint")
                weights.append(HINT_WEIGHT)
            if w.kvm.with_bitmap:       # dirty ring with the backup bitmap only, likewise
                names.append(NOVCPU)
                weights.append(sw.w_device or NOVCPU_WEIGHT)
        names.append("clock")
        weights.append(sw.w_clock if free else 0.2)
        window = fetch_window(w) if sw.w_device and w.vm_running and "fetch-aim" not in sw.off else None
        if window:
            weights[names.index("device")] += FETCH_WINDOW_WEIGHT
        name = rng.choices(names, weights)[0]
        if name == "device" and window:
            return [name, window[0]]
        if name in ("device", "guest-hint", NOVCPU) or name.startswith("vcpu"):
            return [name, self._page(w)]
        if name == "clock":
            ms = rng.choice(sw.clocks)
            if ms == 0 or not runnable:
                wake = w.next_wakeup()
                if wake is not None:
                    return ["clock", wake - w.clock_ms]
                ms = ms or 1000
            return ["clock", ms]
        self.last_thread = name
        if free and sw.preempt_rate and rng.random() < sw.preempt_rate:
            # preempted: the thread stays off the CPU for a while, whatever it holds
            self.descheduled[name] = self.n + sw.preempt_steps
        return [name, None]


def swarm_arm(seed: int, steps: int) -> tuple[Config, SwarmScheduler]:
    """Swarm schedule ``seed``: its drawn config and a scheduler running ``steps`` free steps."""
    sw = draw(seed)
    return sw.config, SwarmScheduler(seed, steps, sw)
