"""Re-searching a long-run find on smaller worlds, for a counterexample a reviewer can read.

Why (measured, benchmarks/README.md "Short counterexamples for long-run finds"): the sweep's long
runs (the plain arm and the preemption arm, :mod:`.strategies`) play on the named worlds of 64-128
pages, where a race that needs a second iteration comes after 1000-3000 steps. Delta debugging
cannot shorten such a run much: every candidate is a replay of about 0.1 s, and no schedule on a
128-page world is shorter than the first iteration's 128 sends (three steps each). The length of
a counterexample is mostly the size of its world, which delta debugging cannot change.

So once a long run has shown a property violation, the same arm runs again, with fresh seeds, on
the same world made smaller (:func:`small_worlds`), and the shortest run that breaks the *same*
property is delta-debugged instead (a short run in a small world shrinks in a second or two).
The small-scope hypothesis (Jackson: most bugs show in small instances) says such a world
usually holds the same bug; nothing here depends on which bug it is.

A smaller world is the failing world divided by one factor ``f`` (the failing word width over a
smaller one, 4, 8 or 16 bits), everything that scales with the guest's size divided alike, so
that one iteration of the smaller world plays as one of the original, only shorter:

- every RAMBlock ``f`` times shorter and nearer to address 0 (a fast-path block stays a whole
  number of the smaller words, word-aligned; a slow-path block stays off the word grid), its
  memslots kept (at most one a page) and its ``clear_bmap`` chunk kept, unless a word would then
  hold fewer than two chunks (then the chunk is halved until it holds two);
- the switchover point (pages pending) ``f`` times lower;
- every period (the timer, the watcher's poll and idle time, iterate-sync, the failover wait)
  ``f`` times shorter: an iteration of an ``f`` times smaller world takes about ``f`` times less
  logical time, and a second actor that must act inside one iteration (the timer syncs only when
  no sync happened for a whole period) still has its chance;
- the arm's free steps ``f`` times fewer (the same number of iterations), at least
  :data:`MIN_STEPS`;
- and, beside the whole world, the block of the violated page alone.

Everything else (KVM mode, vCPUs, burst, auto-converge and the throttle, hinting, multifd, the
dirty ring) stays as the failing world had it. The counterexample's trace records the smaller
world, so ``dirtyproof replay`` reproduces it as any other; the report says which world it is and
which long run it stands for. Every run is seeded from the sweep's seed and the failing schedule's
index (:func:`research_seed`), so the outcome is deterministic; the time limit is only a guard.
If no smaller world breaks the property, the long run is kept: a find is never lost.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from dirtyproof.impl import BlockSpec, Config, Geometry, World
from dirtyproof.impl.bitmap import WORD_WIDTHS

# The smaller word widths a failing world is scaled to (the smallest the model allows first):
# a fast-path block of the named worlds (one 64-page word) becomes one word of 4, 8 or 16 pages.
SMALL_WORD_BITS = (4, 8, 16)
# Config fields that are lengths of logical time, scaled with the world (see the module doc).
PERIODS = ("dirty_sync_timer_ms", "watcher_poll_ms", "watcher_idle_ms", "iterate_sync_ms",
           "failover_unplug_ms")
# Free steps of a re-search run at least: a race of a second actor needs a few iterations even
# in a 4-page world (measured on the dev set's timer races: no failure before step 158; 200 free
# steps 0 of 240 runs fail, 500 steps 11, 1000 steps 22 at twice the cost).
MIN_STEPS = 500
# Rounds of the re-search (one run per smaller world each): it stops early, EXTRA_ROUNDS after
# the first round with a failure, in which only worlds no larger than the smallest failing one
# run, each cut at the best failure's length.
ROUNDS = 10
EXTRA_ROUNDS = 6


@dataclass(frozen=True)
class SmallWorld:
    """One world of a re-search: the failing world divided by :attr:`factor` (its words
    :attr:`word_bits` wide), whole or only the block :attr:`block`."""

    config: Config
    factor: int
    word_bits: int
    block: str | None = None        # the one block kept (the violated page's), or None: every block

    @property
    def pages(self) -> int:
        """Guest pages of the world (what a counterexample's length mostly grows with)."""
        return self.config.geometry.total_pages

    def describe(self) -> str:
        """A few words: how the world was made from the failing one."""
        what = f"block {self.block} alone" if self.block else "every block"
        return (f"the failing world scaled down {self.factor}x ({what}, {self.pages} pages, "
                f"{self.word_bits}-bit words, periods and switchover point {self.factor}x smaller)")


def scale_config(cfg: Config, word_bits: int, block: str | None = None) -> Config | None:
    """``cfg`` divided by ``cfg``'s word width over ``word_bits`` (see the module doc), with only
    the block named ``block`` if given; ``None`` when ``word_bits`` is not a smaller width."""
    g = cfg.geometry
    if word_bits not in WORD_WIDTHS or word_bits >= g.word_bits:
        return None
    f = g.word_bits // word_bits
    blocks = sorted((b for b in g.blocks if block is None or b.name == block), key=lambda b: b.offset)
    if not blocks:
        return None
    out, end = [], 0
    for b in blocks:
        if b.fast_path:
            pages = b.pages // f
            off = max(b.offset // f, -(-end // word_bits) * word_bits)
        else:
            pages = max(1, b.pages // f)
            off = max(b.offset // f, end)
            if off % word_bits == 0 and pages % word_bits == 0:
                off += 1                # off the word grid, as the original slow-path block
        out.append(BlockSpec(b.name, off, pages, min(b.slots, pages)))
        end = off + pages
    # a word keeps at least two chunks when it can (a chunk confused with its neighbour)
    shift = min(g.clear_bmap_shift, max(0, word_bits.bit_length() - 2))
    kw = {k: max(1, getattr(cfg, k) // f) if getattr(cfg, k) else 0 for k in PERIODS}
    return dataclasses.replace(cfg, geometry=Geometry(tuple(out), shift, word_bits),
                               switchover_pages=cfg.switchover_pages // f, **kw)


def small_worlds(cfg: Config, page: int | None = None) -> list[SmallWorld]:
    """The smaller worlds of a re-search of a failure in world ``cfg`` (at page ``page``, if
    known), fewest pages first: each width of :data:`SMALL_WORD_BITS` below ``cfg``'s, the block
    of ``page`` alone, then every block."""
    worlds = []
    own = [b.name for b in cfg.geometry.blocks if page is not None and b.offset <= page < b.end]
    for wb in SMALL_WORD_BITS:
        for block in ([own[0]] if own and len(cfg.geometry.blocks) > 1 else []) + [None]:
            c = scale_config(cfg, wb, block)
            if c is not None:
                worlds.append(SmallWorld(c, cfg.geometry.word_bits // wb, wb, block))
    return sorted(worlds, key=lambda s: (s.pages, s.word_bits))


def research_seed(seed: int, index: int, k: int) -> int:
    """The scheduler seed of re-search run ``k`` of sweep schedule ``index`` (sweep seed ``seed``)."""
    return (seed * 1_000_003 + index) * 4099 + 1 + k


def arm_scheduler(arm: str, seed: int, steps: int):
    """A fresh scheduler of the long-run arm ``arm`` (``plain`` or ``preempt``)."""
    if arm == "preempt":
        from .preempt import PreemptScheduler
        return PreemptScheduler(seed, steps)
    if arm == "plain":
        from dirtyproof.impl.scheduler import RandomScheduler
        return RandomScheduler(seed, steps)
    raise ValueError(f"no re-search for arm {arm!r}")


@dataclass
class SmallFind:
    """A run of the re-search that broke the target property."""

    world: SmallWorld
    seed: int
    steps: int                      # the arm's free steps
    choices: list                   # up to and including the violating step
    violation: object


@dataclass
class ResearchResult:
    """What a re-search did: its failing runs (fewest pages first, then fewest steps), runs and
    world steps taken, seconds."""

    finds: list
    runs: int
    steps: int
    seconds: float


def research_small(design_cls, cfg: Config, arm: str, arm_steps: int, invariant: str,
                   page: int | None, seed: int, index: int, seconds: float,
                   rounds: int = ROUNDS) -> ResearchResult:
    """Run arm ``arm`` (``arm_steps`` free steps on ``cfg``) on :func:`small_worlds` of ``cfg``
    with fresh seeds, a round of one run per world at a time, up to ``rounds`` rounds; after
    the first round with a run that violates ``invariant``, :data:`EXTRA_ROUNDS` more over the
    worlds no larger than the best find's, each run cut at the best find's length. ``seconds``
    is a guard only (it cuts the re-search, and so its determinism, only on a machine loaded far
    beyond the 2-core measurements)."""
    from dirtyproof.checked import run
    from dirtyproof.impl.scheduler import DesignCrash

    from .runner import _step_limit

    t0 = time.perf_counter()
    worlds = small_worlds(cfg, page)
    finds: list[SmallFind] = []
    runs = steps = k = 0
    extra = None                    # rounds left once something failed
    best = None                     # (pages, steps) of the best find so far
    for _ in range(rounds):
        for sw in worlds:
            if time.perf_counter() - t0 > seconds:
                break
            if best is not None and sw.pages > best[0]:
                continue            # a larger world than a find's: its counterexample is longer
            free = max(MIN_STEPS, arm_steps * sw.word_bits // cfg.geometry.word_bits)
            s = research_seed(seed, index, k)
            k += 1
            sched = arm_scheduler(arm, s, free)
            # once something failed, a run that has not failed by its length cannot do better
            cap = _step_limit(free, sched) if best is None else best[1] - 1
            try:
                res = run(World(sw.config, design_cls), sched, keep_log=False, max_steps=cap)
            except DesignCrash:
                continue            # a design that cannot run in the smaller world: not this one
            runs += 1
            steps += res.steps
            v = res.violation
            if v is not None and v.invariant == invariant:
                finds.append(SmallFind(sw, s, free, res.choices[:res.violation_step + 1], v))
                key = (sw.pages, res.violation_step + 1)
                best = key if best is None or key < best else best
        if finds:
            extra = EXTRA_ROUNDS if extra is None else extra - 1
            if extra == 0:
                break
        if time.perf_counter() - t0 > seconds:
            break
    finds.sort(key=lambda f: (f.world.pages, len(f.choices)))
    return ResearchResult(finds, runs, steps, time.perf_counter() - t0)


__all__ = ["MIN_STEPS", "ResearchResult", "SMALL_WORD_BITS", "SmallFind", "SmallWorld", "arm_scheduler",
           "research_seed", "research_small", "scale_config", "small_worlds"]
