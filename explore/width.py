"""A note for counterexamples found in a narrow-word world: does the design assume 64-bit words?

The explorer's worlds use 4-bit words so that a small block takes QEMU's fast path
(docs/explore.md, "The word width"). A design that indexes L2 as if words were 64 bits
(``rb.offset >> 6``) then reads and exchanges L2 words that hold another block's pages, and
the explorer's counterexample (a wrong count, a lost page) is about that, not about the sync's
logic. :func:`foreign_l2_words` runs the design on seeded random schedules of the same world and
watches every L2 word access made inside a fast-path ``cpu_physical_memory_sync_dirty_bitmap``:
a word that holds none of the synced block's pages is named in one line, which the explorer adds
to its verdict as a note (the verdict itself stands: it is what the model does)."""
from __future__ import annotations

from dirtyproof.impl.bitmap import BITS_PER_LONG
from dirtyproof.impl.regions import innermost
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.impl.world import World

SYNC = "cpu_physical_memory_sync_dirty_bitmap"


def _probed(w, hits: list) -> None:
    """Make ``w.L2`` record the L2 words accessed inside a fast-path sync that hold none of the
    synced block's pages (``(block name, word, its width, the word's first page)``)."""
    base = type(w.L2)

    def look(k: int, bits) -> None:
        actor = w.current
        region = innermost(actor, SYNC) if actor is not None else None
        if region is None:
            return
        rb = region.arg("rb", 0)
        if rb is None or not getattr(rb, "fast_path", False):
            return
        b = bits or w.L2.word_bits
        first = k * b
        if first + b <= rb.offset or first >= rb.offset + rb.pages:
            hits.append((rb.idstr, k, b, first))

    class ProbedL2(base):
        __slots__ = ()

        def word(self, k, bits=None):
            look(k, bits)
            return base.word(self, k, bits)

        def set_word(self, k, value, bits=None):
            look(k, bits)
            return base.set_word(self, k, value, bits)

    w.L2.__class__ = ProbedL2


def foreign_l2_words(design_cls, config, seeds: int = 2, steps: int = 300) -> str | None:
    """One line if ``design_cls``, run on ``config`` (``seeds`` seeded random schedules of
    ``steps`` free steps), touches an L2 word outside the block it is syncing on the fast path;
    ``None`` when it never does, when the world's words are 64 bits, or when the probe cannot run
    the design (a crash is the engines' to report, not a note's)."""
    if config.geometry.word_bits >= BITS_PER_LONG:
        return None
    from dirtyproof.checked import run
    hits: list = []
    for seed in range(seeds):
        try:
            w = World(config, design_cls)
            _probed(w, hits)
            run(w, RandomScheduler(seed, steps), keep_log=False)
        except Exception:  # noqa: BLE001 - a note is best effort; the verdict does not rest on it
            return None
        if hits:
            name, k, b, first = hits[0]
            return (f"note: while syncing block {name} on the fast path the design touched L2 word {k} "
                    f"(pages {first}-{first + b - 1}), which holds none of {name}'s pages; this world's "
                    f"words are {config.geometry.word_bits} bits: a design must index L2 with "
                    f"w.L2.word_bits, not 64 (docs/designs.md), or this counterexample is about that")
    return None


__all__ = ["foreign_l2_words"]
