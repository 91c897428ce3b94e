"""explore/width.py: a counterexample found in a narrow-word world carries a note when the design
touches L2 words outside the block it syncs on the fast path (a design written for 64-bit words),
and only then: no shipped design or corpus mutant gets one."""
from __future__ import annotations

from dirtyproof.explore.bounds import default_config
from dirtyproof.explore.width import foreign_l2_words
from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import DESIGNS, Legacy
from dirtyproof.mutants import MUTANTS


class SixtyFourBitIndex(Legacy):
    """The base fast path, with L2 indexed as if words were 64 bits (``rb.offset >> 6``)."""

    name = "sixty-four-bit-index"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset >> 6
        for k in range(rb.words()):
            if w.L2.word(base + k):
                bits = w.L2.xchg_word(base + k, 0)
                old = rb.bmap.word(k)
                num_dirty += (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                yield f"{rb.idstr}: xchg L2 word {base + k} into bmap word {k}"
        rb.clear_bmap.fill(True)
        yield f"{rb.idstr}: clear_bmap all set"
        return num_dirty


def test_a_design_indexing_l2_by_64_bit_words_gets_the_note():
    """In the explorer's world (4-bit words, ram0 at page 0, odd0 at page 5) the 64-bit index of
    ram0 is right by chance (offset 0), so the probe's world moves ram0: its L2 words are then
    another block's."""
    cfg = default_config("manual")
    from dataclasses import replace
    from dirtyproof.impl.geometry import BlockSpec, Geometry
    geo = Geometry((BlockSpec("odd0", 1, 2, 1), BlockSpec("ram0", 4, 4, 1)), clear_bmap_shift=1, word_bits=4)
    note = foreign_l2_words(SixtyFourBitIndex, replace(cfg, geometry=geo))
    assert note is not None and "L2 word" in note and "ram0" in note
    assert foreign_l2_words(Legacy, replace(cfg, geometry=geo)) is None


def test_no_shipped_design_or_mutant_gets_the_note():
    cfg = default_config("manual")
    for name, cls in {**DESIGNS, **MUTANTS}.items():
        assert foreign_l2_words(cls, cfg, seeds=1, steps=200) is None, name


def test_no_note_at_64_bit_words():
    from dataclasses import replace
    cfg = default_config("manual")
    wide = replace(cfg, geometry=replace(cfg.geometry, word_bits=64))
    assert foreign_l2_words(SixtyFourBitIndex, wide) is None


def test_the_explorer_prints_the_note_with_its_counterexample(tmp_path):
    """End to end: the explorer's counterexample for the 64-bit-index design in a world where ram0
    does not start at page 0 comes with the note (in the printed text and the outcome)."""
    from dataclasses import replace

    from dirtyproof.explore.bounds import Bounds
    from dirtyproof.explore.reductions import Reductions
    from dirtyproof.explore.run import explore_runs
    from dirtyproof.impl.geometry import BlockSpec, Geometry
    geo = Geometry((BlockSpec("odd0", 1, 2, 1), BlockSpec("ram0", 4, 4, 1)), clear_bmap_shift=1, word_bits=4)
    cfg = replace(default_config("manual"), geometry=geo)
    bounds = Bounds(guest_writes=1, device_writes=0, clock_moves=0, cancels=0, moves=1, preemptions=0)
    (o,) = list(explore_runs(SixtyFourBitIndex, "sixty-four-bit-index", [("t", cfg, bounds)], Reductions(),
                             trace_dir=str(tmp_path), steps=False))
    assert o.result.violation is not None, "the misindexed sync should break a property"
    assert o.note and o.note in o.text and "w.L2.word_bits" in o.note
