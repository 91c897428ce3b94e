"""The counting lemmas (:mod:`.counting`) against the counters of the implementation.

The lemmas are proved over terms: a fast-path word of a sync adds ``popcount(bits & ~old)`` to
``migration_dirty_pages`` and to ``num_dirty_pages_period`` and leaves ``old | bits`` in ``bmap``.
They cover a design only if its code adds those terms. This module runs a design's own sync,
alone and to its end, on a one-block world whose ``bmap`` word and L2 word are given (a
fast-path block of one word, and a slow-path block of 63 pages in one word), and reads
which term each counter added: ``new-bits`` (the proven term), ``raw-bits`` (``popcount(bits)``,
the term the lemmas refute: ``counting/broken-count`` and ``counting/broken-period-counter``), or
``other``.

For a design that adds a refuted term, the model Z3 gives for the refutation (an ``old`` and a
``bits`` byte, widened to a word) is replayed in the world, and the spec invariant it breaks
(``dirty-pages-count`` or ``period-counter``) is reported: the proof's counterexample, concrete.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from dirtyproof.impl import BlockSpec, Config, Geometry, World
from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.steps import SYNC_DONE
from dirtyproof.spec import BY_ID

from .counting import broken_count_query
from .solver import QueryRunner

# One fast-path block of one word, one memslot: the sync's only work is the word under test.
WORD_WORLD = Config(geometry=Geometry((BlockSpec("ram0", 0, 64, 1),), 0), kvm_mode="manual")
# One slow-path block of 63 pages in the same word (63 is not a multiple of the word): the slow
# path's counting, page by page or batched (QEMU 11.0), over the word's first 63 bits.
SLOW_WORLD = Config(geometry=Geometry((BlockSpec("odd0", 0, 63, 1),), 0), kvm_mode="manual")
WORLDS = (WORD_WORLD, SLOW_WORLD)

# The counters and the spec invariant that checks each.
COUNTERS = {"migration_dirty_pages": "dirty-pages-count", "num_dirty_pages_period": "period-counter"}

NEW_BITS, RAW_BITS, OTHER = "new-bits", "raw-bits", "other"


@dataclass
class WordSync:
    """What one sync of a design did to a world whose ``bmap`` word was ``old`` and L2 word ``bits``."""

    added: dict[str, int]          # counter -> what the sync added to it
    bmap: int                      # the bmap word after the sync
    violations: set[str]           # the counters' spec invariants the end state breaks


def sync_word(design_cls, old: int, bits: int, world: Config = WORD_WORLD) -> WordSync:
    """Run ``design_cls``'s first sync alone (every step of the migration thread, nothing
    interleaved) on ``world`` (:data:`WORD_WORLD` or :data:`SLOW_WORLD`) after ``ram_init_bitmaps``,
    with ``bmap`` set to ``old``, L2 to ``bits`` (both cut to the block's pages) and the counters
    consistent with them (nothing fetched from KVM)."""
    w = World(world, design_cls)
    w.step(["mgmt", "start"])
    w.step(["migration", None])                       # ram_init_bitmaps
    rb, mig = w.blocks[0], w.mig
    mask = (1 << rb.pages) - 1
    old, bits = old & mask, bits & mask
    rb.bmap.set_word(0, old)
    w.L2.words[0] = bits
    mig.migration_dirty_pages = old.bit_count()
    mig.num_dirty_pages_period = w.ghost.period_new_bits = 0
    before = {c: getattr(mig, c) for c in COUNTERS}
    for _ in range(1000):
        w.step(["migration", None])
        if w.last_step.kind == SYNC_DONE:
            break
    else:
        raise RuntimeError(f"{design_cls.__name__}: the first sync did not end in 1000 steps")
    added = {c: getattr(mig, c) - before[c] for c in COUNTERS}
    broken = {inv for inv in COUNTERS.values() if BY_ID[inv].predicate(w) is not None}
    return WordSync(added, rb.bmap.word(0), broken)


def counter_terms(design_cls, samples: int = 64, seed: int = 0) -> dict[str, str]:
    """Which term each counter of ``design_cls`` adds, over ``samples`` random word pairs (plus
    the corner pairs): ``new-bits``, ``raw-bits`` or ``other``."""
    rng = random.Random(seed)
    pairs = [(0, 0), (WORD_MASK, WORD_MASK), (0, WORD_MASK), (WORD_MASK, 0)]
    pairs += [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(samples)]
    per_world = []
    for world in WORLDS:
        mask = (1 << world.geometry.blocks[0].pages) - 1
        terms = {c: {NEW_BITS, RAW_BITS} for c in COUNTERS}
        for old, bits in pairs:
            got = sync_word(design_cls, old, bits, world)
            old_m, bits_m = old & mask, bits & mask
            for c, n in got.added.items():
                if n != (bits_m & ~old_m & WORD_MASK).bit_count():
                    terms[c].discard(NEW_BITS)
                if n != bits_m.bit_count():
                    terms[c].discard(RAW_BITS)
        # new-bits wins a tie (pairs where the two terms agree cannot tell them apart)
        per_world.append({c: NEW_BITS if NEW_BITS in t else (RAW_BITS if t else OTHER) for c, t in terms.items()})
    # a counter is covered only if it adds the proven term on both paths; the refuted term on
    # either path is what it adds (its Z3 model is replayed on both)
    out = {}
    for c in COUNTERS:
        got = {t[c] for t in per_world}
        out[c] = NEW_BITS if got == {NEW_BITS} else (RAW_BITS if got <= {NEW_BITS, RAW_BITS} else OTHER)
    return out


def refutation_word(runner: QueryRunner) -> tuple[int, int]:
    """Z3's model refuting ``popcount(old | bits) == popcount(old) + popcount(bits)`` (8 bits):
    an (old, bits) pair whose raw count is wrong; raises ``RuntimeError`` unless the query is sat."""
    res, old, bits = broken_count_query(runner)
    if res.status != "sat":
        raise RuntimeError(f"{res.name}: {res.status}, expected sat")
    return res.model[old].as_long(), res.model[bits].as_long()


@dataclass
class CountingVerdict:
    """How the counting lemmas bear on a design."""

    terms: dict[str, str]              # counter -> term it adds
    refuted: dict[str, str]            # counter -> invariant the Z3 model breaks when replayed
    word: tuple[int, int] | None       # the replayed (old, bits), if any

    @property
    def covered(self) -> bool:
        """Every counter adds the proven term: the lemmas hold for this design's counting."""
        return all(t == NEW_BITS for t in self.terms.values())

    @property
    def verdict(self) -> str:
        """``safe`` (covered), ``unsafe`` (a refuted term whose Z3 model breaks an invariant when
        replayed) or ``unknown`` (a term that is neither, or a replay that breaks nothing)."""
        if self.covered:
            return "safe"
        return "unsafe" if self.refuted else "unknown"

    def summary(self) -> str:
        """One line: each counter's term and, for a refuted one, the replayed model."""
        parts = [f"{c} adds {t}" for c, t in self.terms.items()]
        line = "counting: " + ", ".join(parts)
        if self.covered:
            return line + ": the counting lemmas cover it"
        if self.refuted:
            old, bits = self.word
            broken = ", ".join(sorted(set(self.refuted.values())))
            return (line + f": refuted (Z3 model old=0x{old:02x}, bits=0x{bits:02x}, replayed in the "
                    f"design's own sync, breaks {broken})")
        return line + ": neither the proven nor the refuted term"


def check_counting(design_cls, runner: QueryRunner, samples: int = 64) -> CountingVerdict:
    """Classify ``design_cls``'s counters; for each one adding the refuted term, replay Z3's model
    of the refutation and record the invariant the end state breaks."""
    terms = counter_terms(design_cls, samples)
    if RAW_BITS not in terms.values():
        return CountingVerdict(terms, {}, None)
    old, bits = refutation_word(runner)
    broken = set().union(*(sync_word(design_cls, old, bits, world).violations for world in WORLDS))
    # only the raw term is the one the lemma refutes; another wrong term is "unknown" to it
    refuted = {c: COUNTERS[c] for c, t in terms.items() if t == RAW_BITS and COUNTERS[c] in broken}
    return CountingVerdict(terms, refuted, (old, bits))


__all__ = ["COUNTERS", "CountingVerdict", "SLOW_WORLD", "WORD_WORLD", "WORLDS", "WordSync", "check_counting", "counter_terms",
           "refutation_word", "sync_word"]
