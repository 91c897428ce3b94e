"""Guest RAM geometry: RAMBlocks in the ram_addr page space, their KVM memslots and ``clear_bmap_shift``.

All sizes are in target pages. A block is on QEMU's fast path when its offset and length are both
multiples of BITS_PER_LONG pages (one ``unsigned long`` of the dirty bitmaps: 64 by default, the
geometry's ``word_bits``); otherwise the L2->L3 sync of that block takes the page-at-a-time slow path.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .bitmap import BITS_PER_LONG, WORD_WIDTHS

# QEMU's chunk size is the migration object's x-clear-bitmap-shift: CLEAR_BITMAP_SHIFT_MIN 6 (64
# pages, so every chunk starts on a bitmap word), CLEAR_BITMAP_SHIFT_DEFAULT 18 (1 GiB of 4 KiB
# pages), CLEAR_BITMAP_SHIFT_MAX 31; ram_list_init_bitmaps clamps a value outside 6..31 with a
# warning. The model also accepts 0..5 and defaults to 2 (Geometry.clear_bmap_shift): an
# abstraction, so that a world of a few dozen pages has several chunks per block and chunks
# smaller than a word; QEMU's minimum of 6 runs as well (tests/test_scope_params.py).
MIN_CLEAR_BMAP_SHIFT = 0
MAX_CLEAR_BMAP_SHIFT = 31
QEMU_CLEAR_BITMAP_SHIFT_MIN = 6
QEMU_CLEAR_BITMAP_SHIFT_DEFAULT = 18


@dataclass(frozen=True)
class BlockSpec:
    """One RAMBlock: ``name``, first ram_addr page ``offset``, ``pages`` long, split into ``slots`` KVM memslots."""

    name: str
    offset: int
    pages: int
    slots: int = 1
    # the world's word width, stamped by Geometry (so a RAMBlock knows its fast path from its spec)
    word_bits: int = BITS_PER_LONG

    @property
    def end(self) -> int:
        """First page after the block."""
        return self.offset + self.pages

    @property
    def fast_path(self) -> bool:
        """Whether the L2->L3 sync of this block goes a word at a time (offset and length word-aligned)."""
        return self.offset % self.word_bits == 0 and self.pages % self.word_bits == 0


@dataclass(frozen=True)
class SlotSpec:
    """One KVM memslot: ``index``, the block it belongs to, its first ram_addr page and length."""

    index: int
    block: int
    start: int
    pages: int

    @property
    def end(self) -> int:
        """First page after the slot."""
        return self.start + self.pages


@dataclass(frozen=True)
class Geometry:
    """The RAMBlocks of a guest and the chunk size of ``clear_bmap`` (2**clear_bmap_shift pages)."""

    blocks: tuple[BlockSpec, ...]
    # an abstraction: QEMU's default is 18 and its minimum 6 (QEMU_CLEAR_BITMAP_SHIFT_*, above)
    clear_bmap_shift: int = 2
    # BITS_PER_LONG of the modelled host: 64 (x86-64), or narrower so that a small world holds a
    # fast-path block (docs/explore.md says why the width changes nothing for any one page)
    word_bits: int = BITS_PER_LONG

    def __post_init__(self) -> None:
        if self.word_bits not in WORD_WIDTHS:
            raise ValueError(f"word_bits {self.word_bits!r} not one of {', '.join(map(str, WORD_WIDTHS))}")
        object.__setattr__(self, "blocks", tuple(
            b if b.word_bits == self.word_bits else replace(b, word_bits=self.word_bits) for b in self.blocks))
        if not self.blocks:
            raise ValueError("geometry has no RAMBlock")
        if not isinstance(self.clear_bmap_shift, int) or not (
                MIN_CLEAR_BMAP_SHIFT <= self.clear_bmap_shift <= MAX_CLEAR_BMAP_SHIFT):
            raise ValueError(f"clear_bmap_shift {self.clear_bmap_shift!r} out of range "
                             f"{MIN_CLEAR_BMAP_SHIFT}..{MAX_CLEAR_BMAP_SHIFT}")
        names = set()
        for b in self.blocks:
            if not b.name:
                raise ValueError("a RAMBlock has an empty name")
            if b.name in names:
                raise ValueError(f"RAMBlock name {b.name!r} used twice")
            names.add(b.name)
            if not isinstance(b.pages, int) or b.pages <= 0:
                raise ValueError(f"RAMBlock {b.name!r} is empty ({b.pages!r} pages)")
            if not isinstance(b.offset, int) or b.offset < 0:
                raise ValueError(f"RAMBlock {b.name!r} has a negative offset {b.offset!r}")
            if not isinstance(b.slots, int) or not 1 <= b.slots <= b.pages:
                raise ValueError(f"RAMBlock {b.name!r} cannot be split into {b.slots!r} memslots")
        ordered = sorted(self.blocks, key=lambda b: b.offset)
        for a, b in zip(ordered, ordered[1:]):
            if b.offset < a.end:
                raise ValueError(f"RAMBlocks {a.name!r} [{a.offset}, {a.end}) and {b.name!r} "
                                 f"[{b.offset}, {b.end}) overlap")

    @property
    def ram_pages(self) -> int:
        """Size of the ram_addr page space (end of the last block)."""
        return max(b.end for b in self.blocks)

    @property
    def total_pages(self) -> int:
        """Number of guest pages (sum of block sizes)."""
        return sum(b.pages for b in self.blocks)

    @property
    def chunk_pages(self) -> int:
        """Pages per ``clear_bmap`` chunk."""
        return 1 << self.clear_bmap_shift

    def slots(self) -> tuple[SlotSpec, ...]:
        """The KVM memslots, in block order; a block's slots split it as evenly as possible."""
        out = []
        for bi, b in enumerate(self.blocks):
            base, extra = divmod(b.pages, b.slots)
            start = b.offset
            for s in range(b.slots):
                n = base + (1 if s < extra else 0)
                out.append(SlotSpec(len(out), bi, start, n))
                start += n
        return tuple(out)

    def to_json(self) -> dict:
        """A JSON-able description (traces record the geometry they ran on)."""
        out = {"clear_bmap_shift": self.clear_bmap_shift,
               "blocks": [{"name": b.name, "offset": b.offset, "pages": b.pages, "slots": b.slots}
                          for b in self.blocks]}
        if self.word_bits != BITS_PER_LONG:      # 64-bit traces stay as they were
            out["word_bits"] = self.word_bits
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Geometry":
        """Inverse of :meth:`to_json`; raises ``ValueError`` on a malformed description."""
        try:
            blocks = tuple(BlockSpec(str(b["name"]), b["offset"], b["pages"], b.get("slots", 1))
                           for b in data["blocks"])
            return cls(blocks, data.get("clear_bmap_shift", 2), data.get("word_bits", BITS_PER_LONG))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed geometry: {exc!r}") from None

    @classmethod
    def simple(cls, aligned: int = 1, unaligned: int = 1, pages: int = 64, shift: int = 2) -> "Geometry":
        """A small mixed geometry: ``aligned`` 64-aligned blocks then ``unaligned`` odd-sized ones."""
        blocks, off = [], 0
        for i in range(aligned):
            blocks.append(BlockSpec(f"ram{i}", off, pages))
            off += pages
        for i in range(unaligned):
            n = pages // 2 + 3
            blocks.append(BlockSpec(f"odd{i}", off + 5, n))
            off += 5 + n
        return cls(tuple(blocks), shift)


# The named worlds of the command line and of the hunt's plain runs: fast-path blocks at 0 and
# away from 0, slow-path blocks, both.
PRESETS = ("mixed", "aligned", "unaligned")


def named(name: str, shift: int = 2) -> Geometry:
    """``mixed`` (an aligned and an unaligned block, two slots in one), ``aligned`` (two fast-path
    blocks, the second away from address 0) or ``unaligned`` (two slow-path blocks);
    ``ValueError`` for any other name."""
    if name == "mixed":
        return Geometry.simple(aligned=1, unaligned=1, pages=64, shift=shift)
    if name == "aligned":
        return Geometry.simple(aligned=2, unaligned=0, pages=64, shift=shift)
    if name == "unaligned":
        return Geometry.simple(aligned=0, unaligned=2, pages=64, shift=shift)
    raise ValueError(f"unknown geometry {name!r} ({', '.join(PRESETS)})")

