"""The counting lemmas against the implementation's counters (proofs/counting_conformance.py):
every shipped design adds the proven term, and the counting mutants add the refuted one, whose Z3
model, replayed in the mutant's own sync, breaks the invariant the hunter catches it with."""
from __future__ import annotations

import pytest

from dirtyproof.cli.main import main
from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.mutants import MUTANTS, load_manifest
from dirtyproof.proofs.counting_conformance import (NEW_BITS, RAW_BITS, check_counting, counter_terms,
                                                   sync_word)
from dirtyproof.proofs.solver import QueryRunner

from test_proofs_verdicts import UnknownRunner

MANIFEST = load_manifest()["mutants"]
COUNTING_MUTANTS = ("dirty-count-raw-bits", "period-popcount")


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_shipped_designs_add_the_proven_term(name):
    """Both counters of every shipped design add popcount(bits & ~old): the lemmas cover them."""
    v = check_counting(DESIGNS[name], QueryRunner(), samples=32)
    assert v.terms == {"migration_dirty_pages": NEW_BITS, "num_dirty_pages_period": NEW_BITS}
    assert v.verdict == "safe" and "cover" in v.summary()


def test_word_sync_is_the_lemma_on_a_hand_worked_word():
    """old = 0b0110, bits = 0b1100: one new bit, bmap 0b1110, no invariant broken."""
    got = sync_word(DESIGNS["legacy"], 0b0110, 0b1100)
    assert got.added == {"migration_dirty_pages": 1, "num_dirty_pages_period": 1}
    assert got.bmap == 0b1110 and not got.violations


@pytest.mark.parametrize("name", COUNTING_MUTANTS)
def test_counting_mutants_are_refuted_and_the_model_replays(name):
    """The mutant's counter adds popcount(bits); the lemma refutes that term, and Z3's model of the
    refutation, replayed in the mutant's own sync, breaks the property the manifest names."""
    v = check_counting(MUTANTS[name], QueryRunner(), samples=32)
    assert RAW_BITS in v.terms.values() and v.verdict == "unsafe"
    assert MANIFEST[name]["property"] in v.refuted.values()
    old, bits = v.word
    assert (old | bits).bit_count() != old.bit_count() + bits.bit_count()


def test_count_outside_mutex_adds_the_right_term_at_the_wrong_time():
    """Its counter's term is right (the lemmas cover the arithmetic); its bug is when it adds it,
    which the hunter catches between the mutex release and the update."""
    assert set(counter_terms(MUTANTS["count-outside-mutex"], samples=8).values()) == {NEW_BITS}


def test_a_counter_that_is_neither_term_is_unknown():
    """A design adding a constant is neither covered nor refuted: unknown, a failure."""
    class AddsOne(DESIGNS["legacy"]):
        name = "adds-one"

        def ramblock_sync_dirty_bitmap(self, w, rb):
            n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
            w.mig.migration_dirty_pages += n + 1
            w.mig.num_dirty_pages_period += n

    v = check_counting(AddsOne, QueryRunner(), samples=8)
    assert v.terms == {"migration_dirty_pages": "other", "num_dirty_pages_period": NEW_BITS}
    assert v.verdict == "unknown" and "neither" in v.summary()


def test_an_undecided_refutation_is_a_failure():
    """Z3 'unknown' for the refutation query raises; it never counts as a refutation."""
    with pytest.raises(RuntimeError, match="unknown"):
        check_counting(MUTANTS["dirty-count-raw-bits"], UnknownRunner(), samples=4)


def test_cli_prove_reports_the_counting_refutation(capsys):
    """``dirtyproof prove`` on a counting mutant: unsafe by the counting lemmas, as the manifest says."""
    rc = main(["prove", "--design", "period-popcount", "--config", "manual/mixed"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "refuted" in out and "period-counter" in out and "by the counting lemmas" in out
