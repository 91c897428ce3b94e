"""Compare two guest-memory dumps page by page, and read the guest's pattern out of a dump."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PAGE = 4096


@dataclass
class MemoryComparison:
    """The result of comparing the source's and the destination's guest memory."""

    pages: int
    differing: list[int] = field(default_factory=list)   # page numbers (guest-physical / 4096)

    def to_json(self) -> dict:
        """A JSON-able form, recorded with the samples."""
        return {"pages": self.pages, "differing": self.differing[:64], "differing_count": len(self.differing)}


def compare_dumps(src: bytes, dst: bytes) -> MemoryComparison:
    """Page-by-page equality of two dumps of the same guest-physical range."""
    if len(src) != len(dst) or len(src) % PAGE:
        raise ValueError(f"dumps differ in size or are not whole pages ({len(src)} and {len(dst)} bytes)")
    a = np.frombuffer(src, dtype=np.uint8).reshape(-1, PAGE)
    b = np.frombuffer(dst, dtype=np.uint8).reshape(-1, PAGE)
    bad = np.nonzero((a != b).any(axis=1))[0]
    return MemoryComparison(pages=a.shape[0], differing=[int(p) for p in bad])


def read_pattern(dump: bytes, start: int, hot_bytes: int) -> dict:
    """Check the guest's pattern in a dump: every hot page holds (P, P ^ address) and the pages
    that hold the newest pass number form a prefix of the hot set (the pass in progress)."""
    words = np.frombuffer(dump, dtype="<u4").reshape(-1, PAGE // 4)
    first = start // PAGE
    n = hot_bytes // PAGE
    hot = words[first:first + n, :2].astype(np.uint64)
    addr = (np.arange(first, first + n, dtype=np.uint64) * PAGE)
    torn = np.nonzero(hot[:, 1] != (hot[:, 0] ^ addr))[0]
    newest = int(hot[:, 0].max()) if n else 0
    is_new = hot[:, 0] == newest
    stale = np.nonzero(~is_new & (hot[:, 0] != newest - 1))[0]
    prefix = int(is_new.sum())
    ordered = bool(is_new[:prefix].all()) if prefix else True
    return {"pass": newest, "torn_pages": [int(first + p) for p in torn[:16]],
            "stale_pages": [int(first + p) for p in stale[:16]], "newest_prefix": ordered,
            "ok": not len(torn) and not len(stale) and ordered and newest >= 1}
