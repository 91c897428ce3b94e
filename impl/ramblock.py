"""A RAMBlock as migration sees it: ``bmap``, ``clear_bmap`` and whatever per-block state a design adds."""
from __future__ import annotations

from .bitmap import Bitmap
from .geometry import BlockSpec


class RAMBlock:
    """One RAMBlock: its place in ram_addr space and its migration bitmaps (block-relative pages).

    ``clear_bmap`` has one bit per chunk of ``2**clear_bmap_shift`` pages: "the remote L1 clear of
    this chunk is still owed". A design adds bitmaps with :meth:`add_bitmap` (``iter_bmap``...)."""

    def __init__(self, index: int, spec: BlockSpec, clear_bmap_shift: int):
        self.index = index
        self.spec = spec
        self.idstr = spec.name
        self.offset = spec.offset
        self.pages = spec.pages
        self.fast_path = spec.fast_path
        self.word_bits = spec.word_bits
        self.clear_bmap_shift = clear_bmap_shift
        self.bmap = Bitmap(self.pages, word_bits=self.word_bits)
        self.clear_bmap = Bitmap((self.pages + (1 << clear_bmap_shift) - 1) >> clear_bmap_shift)
        self.extra_bitmaps: dict[str, Bitmap] = {}
        self.counters: dict[str, int] = {}

    def add_bitmap(self, name: str) -> Bitmap:
        """Allocate a design bitmap of one bit per page, reachable as ``block.<name>``."""
        bm = Bitmap(self.pages, word_bits=self.word_bits)
        self.extra_bitmaps[name] = bm
        setattr(self, name, bm)
        return bm

    def chunk_of(self, page: int) -> int:
        """``clear_bmap`` index of block-relative ``page``."""
        return page >> self.clear_bmap_shift

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        """Block-relative pages [start, end) of ``chunk``, cut at the block's end."""
        start = chunk << self.clear_bmap_shift
        return start, min(start + (1 << self.clear_bmap_shift), self.pages)

    def words(self) -> int:
        """Number of ``word_bits``-page words of the block (fast path)."""
        return (self.pages + self.word_bits - 1) // self.word_bits

    def __repr__(self) -> str:
        return f"RAMBlock({self.idstr!r}, offset={self.offset}, pages={self.pages})"
