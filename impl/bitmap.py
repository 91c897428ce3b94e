"""Packed bitmaps: one bit per page, 64 pages per ``uint64`` word, as QEMU's ``unsigned long *``.

Single-bit helpers read a word as a Python int with ``ndarray.item`` (the cheapest scalar read in
numpy) and store it back; whole-bitmap helpers are vectorised so a 2^24-page sync runs no per-page Python loop.
"""
from __future__ import annotations

import numpy as np

BITS_PER_LONG = 64
WORD_MASK = (1 << BITS_PER_LONG) - 1
# Word widths a world may use for the fast path's ``unsigned long`` (see Geometry.word_bits):
# each divides the 64-bit storage word, so a narrow word is a bit field of one storage word.
WORD_WIDTHS = (4, 8, 16, 32, 64)


def words_for(nbits: int) -> int:
    """Number of 64-bit words needed to hold ``nbits`` bits."""
    return (nbits + BITS_PER_LONG - 1) // BITS_PER_LONG


class Bitmap:
    """A fixed-size bitmap of ``nbits`` bits stored in ``uint64`` words (bit i of word w = page 64w+i)."""

    # ``freed`` is set only when the world frees the bitmap (impl/freed.py)
    __slots__ = ("nbits", "words", "word_bits", "freed")

    def __init__(self, nbits: int, fill: bool = False, word_bits: int = BITS_PER_LONG):
        self.nbits = nbits
        # the width of the words :meth:`word` and friends address (storage stays 64-bit)
        self.word_bits = word_bits
        self.words = np.zeros(words_for(nbits), dtype=np.uint64)
        if fill:
            self.set_range(0, nbits)

    # -- single bits -------------------------------------------------------------------------
    def test(self, i: int) -> bool:
        """Whether bit ``i`` is set."""
        return (self.words.item(i >> 6) >> (i & 63)) & 1 == 1

    def set(self, i: int) -> None:
        """Set bit ``i``."""
        w = i >> 6
        self.words[w] = self.words.item(w) | (1 << (i & 63))

    def clear(self, i: int) -> None:
        """Clear bit ``i``."""
        w = i >> 6
        self.words[w] = self.words.item(w) & ~(1 << (i & 63)) & WORD_MASK

    def test_and_clear(self, i: int) -> bool:
        """Clear bit ``i`` and return whether it was set (QEMU's ``test_and_clear_bit``)."""
        w = i >> 6
        old = self.words.item(w)
        bit = 1 << (i & 63)
        if old & bit:
            self.words[w] = old & ~bit & WORD_MASK
            return True
        return False

    def test_and_set(self, i: int) -> bool:
        """Set bit ``i`` and return whether it was already set (QEMU's ``test_and_set_bit``)."""
        w = i >> 6
        old = self.words.item(w)
        bit = 1 << (i & 63)
        if old & bit:
            return True
        self.words[w] = old | bit
        return False

    # -- words ---------------------------------------------------------------------------------
    def word(self, w: int, bits: int | None = None) -> int:
        """Word ``w`` of ``bits`` bits (default: this bitmap's ``word_bits``) as a Python int."""
        b = bits or self.word_bits
        if b == BITS_PER_LONG:
            return self.words.item(w)
        per = BITS_PER_LONG // b
        return (self.words.item(w // per) >> ((w % per) * b)) & ((1 << b) - 1)

    def xchg_word(self, w: int, value: int, bits: int | None = None) -> int:
        """Store ``value`` into word ``w`` and return the old word (QEMU's ``qatomic_xchg``)."""
        old = self.word(w, bits)
        self.set_word(w, value, bits)
        return old

    def set_word(self, w: int, value: int, bits: int | None = None) -> None:
        """Store ``value`` into word ``w`` of ``bits`` bits (default: ``word_bits``)."""
        b = bits or self.word_bits
        if b == BITS_PER_LONG:
            self.words[w] = value
            return
        per = BITS_PER_LONG // b
        sw, sh = w // per, (w % per) * b
        field = ((1 << b) - 1) << sh
        self.words[sw] = (self.words.item(sw) & ~field & WORD_MASK) | ((value << sh) & field)

    # -- ranges and whole bitmaps -------------------------------------------------------------
    def _range_mask_words(self, start: int, end: int) -> np.ndarray:
        """A word array with exactly bits [start, end) set."""
        mask = np.zeros_like(self.words)
        if end <= start:
            return mask
        first, last = start >> 6, (end - 1) >> 6
        mask[first:last + 1] = np.uint64(WORD_MASK)
        mask[first] &= np.uint64((WORD_MASK << (start & 63)) & WORD_MASK)
        tail = end & 63
        if tail:
            mask[last] &= np.uint64((1 << tail) - 1)
        return mask

    def _one_word_mask(self, start: int, end: int):
        """``(word, mask)`` when [start, end) lies within one storage word, else ``None``: then a
        range operation is one integer operation, not a mask array (the explorer's small worlds
        replay many of them)."""
        if end <= start or start >> 6 != (end - 1) >> 6:
            return None
        return start >> 6, ((1 << (end - start)) - 1) << (start & 63)

    def set_range(self, start: int, end: int) -> None:
        """Set bits [start, end)."""
        one = self._one_word_mask(start, end)
        if one is not None:
            w, m = one
            self.words[w] = self.words.item(w) | m
            return
        self.words |= self._range_mask_words(start, end)

    def clear_range(self, start: int, end: int) -> None:
        """Clear bits [start, end)."""
        one = self._one_word_mask(start, end)
        if one is not None:
            w, m = one
            self.words[w] = self.words.item(w) & ~m & WORD_MASK
            return
        self.words &= ~self._range_mask_words(start, end)

    def range_bits(self, start: int, end: int) -> list[int]:
        """Indices of set bits in [start, end), ascending (small ranges: chunk masks, diffs)."""
        return [i for i in range(start, end) if self.test(i)]

    def find_next(self, start: int, end: int) -> int:
        """First set bit in [start, end), or ``end`` if none (QEMU's ``find_next_bit``)."""
        i = start
        while i < end:
            w = i >> 6
            word = self.words.item(w) >> (i & 63)
            if word:
                found = i + ((word & -word).bit_length() - 1)
                return found if found < end else end
            i = (w + 1) << 6
        return end

    def popcount(self) -> int:
        """Number of set bits."""
        return int(np.bitwise_count(self.words).sum())

    def any(self) -> bool:
        """Whether any bit is set."""
        return bool(self.words.any())

    def fill(self, value: bool) -> None:
        """Set every bit to ``value`` (bits past ``nbits`` stay clear)."""
        self.words[:] = 0
        if value:
            self.set_range(0, self.nbits)

    def copy(self) -> "Bitmap":
        """An independent copy."""
        other = Bitmap.__new__(Bitmap)
        other.nbits = self.nbits
        other.words = self.words.copy()
        other.word_bits = self.word_bits
        return other

    def to_list(self) -> list[int]:
        """Indices of all set bits (for traces and diffs of small worlds)."""
        bits = np.unpackbits(self.words.view(np.uint8), bitorder="little")[: self.nbits]
        return [int(i) for i in np.flatnonzero(bits)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bitmap) and self.nbits == other.nbits and bool(
            np.array_equal(self.words, other.words))

    def __repr__(self) -> str:
        return f"Bitmap({self.nbits}, set={self.to_list()[:16]}{'...' if self.popcount() > 16 else ''})"
