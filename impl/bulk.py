"""A vectorised full sync for very large worlds (2^24..2^28 pages).

:func:`migration_bitmap_sync_bulk` leaves a world in exactly the state that stepping the base
design's ``migration_bitmap_sync`` to its end would leave it in when no other actor interleaves:
the log sync of every memslot (GET, then the OR of L1c into L2), then under ``bitmap_mutex`` the
L2 -> ``bmap`` sync of every RAMBlock, then the throttle check and the new rate period.

It runs no per-page Python loop. Each bit of every layer is touched only by operations on its
own page, and slots tile blocks exactly, so the work can be split by block and, inside a block,
into word chunks small enough to stay in the CPU cache while several layers are combined:

- fast-path block: per word, GET (``L1c = L1``; legacy mode also clears L1 and re-protects), OR
  into L2, then the ``atomic_xchg`` of every L2 word into ``bmap`` with the new bits counted;
  finally every ``clear_bmap`` bit is set. With numba installed (the ``fast`` extra) this is one
  compiled pass over the block (:mod:`.bulk_kernel`); without it, or with the environment
  variable ``DIRTYPROOF_BULK=numpy``, numpy ufuncs run it chunk by chunk;
- slow-path block: the same GET/OR under edge masks, then the page-at-a-time loop done for the
  whole block at once: L2 bits taken (shifted to block-relative words), the per-page remote clear
  (mask from L1c, re-protect, L1c cleared) over the block, and the ``bmap`` test-and-set count.

The per-page slow path skips pages whose L2 bit is clear and have no fetched L1c bit; for such a
page the remote clear is a no-op, so doing it for every page gives the same state.
What the stepped sync records only for the step invariants (``w.events``: CLEAR events, the
``sync_end`` snapshot) is not recorded: a bulk sync is not a step of a checked run.
"""
from __future__ import annotations

import os

import numpy as np

from . import bulk_kernel
from .bitmap import BITS_PER_LONG, WORD_MASK, words_for
from .designs.base import Design

# Words per chunk of the numpy path: 64 Ki words = 512 KiB per layer (measured best on a 2^24 and
# a 2^28 world: small enough that the layers a chunk combines mostly stay in cache between the
# numpy calls). The numba kernel needs no chunks: it makes one pass over the block.
CHUNK_WORDS = 1 << 16

# The steps the bulk sync replaces; a design that overrides any of them syncs differently.
SYNC_STEPS = ("migration_bitmap_sync_precopy", "migration_bitmap_sync", "memory_global_dirty_log_sync",
              "ramblock_sync_dirty_bitmap", "cpu_physical_memory_sync_dirty_bitmap", "sync_one_page",
              "memory_region_clear_dirty_bitmap")

_ONES = np.uint64(WORD_MASK)


def check_bulk_applicable(w) -> None:
    """Raise ``ValueError`` unless ``w`` can take a bulk sync: a migration with its bitmaps, a
    design that syncs as the base design does, and no thread inside a sync (locks free)."""
    if w.mig is None:
        raise ValueError("bulk sync needs a migration (mgmt start first)")
    if w.geometry.word_bits != BITS_PER_LONG:
        # the vectorised fast path works on whole 64-bit storage words
        raise ValueError(f"bulk sync needs {BITS_PER_LONG}-bit words, not {w.geometry.word_bits}")
    cls = type(w.design)
    changed = [m for m in SYNC_STEPS if getattr(cls, m) is not getattr(Design, m)]
    if changed:
        raise ValueError(f"design {w.design.name!r} overrides {', '.join(changed)}: "
                         f"the bulk sync only replaces the base design's sync")
    for lock in ("bitmap_mutex", "slots_lock"):
        if w.lock_owner[lock] is not None:
            raise ValueError(f"bulk sync while {w.lock_owner[lock]} holds {lock}")
    if w.ghost.held_pages():
        raise ValueError("bulk sync while another sync is half-way through a slow-path page")


def _edge_masks(start: int, end: int) -> tuple[int, int, np.ndarray]:
    """Words ``[w0, w1)`` covering pages [start, end) and, for them, the mask of those pages."""
    w0, w1 = start >> 6, words_for(end)
    mask = np.full(w1 - w0, _ONES, dtype=np.uint64)
    mask[0] &= np.uint64((WORD_MASK << (start & 63)) & WORD_MASK)
    if end & 63:
        mask[-1] &= np.uint64((1 << (end & 63)) - 1)
    return w0, w1, mask


def _extract(words: np.ndarray, start: int, n: int) -> np.ndarray:
    """Bits [start, start+n) of ``words`` as a new word array whose bit i is bit start+i."""
    nw, w0, s = words_for(n), start >> 6, start & 63
    if s == 0:
        out = words[w0:w0 + nw].copy()
    else:
        out = words[w0:w0 + nw] >> np.uint64(s)
        hi = words[w0 + 1:w0 + nw + 1] << np.uint64(BITS_PER_LONG - s)
        out[:len(hi)] |= hi
    if n & 63:
        out[-1] &= np.uint64((1 << (n & 63)) - 1)
    return out


def _log_sync_masked(w, slot_lo: int, slot_hi: int) -> None:
    """GET and OR for the pages [slot_lo, slot_hi) of one memslot, edge words masked."""
    kvm = w.kvm
    w0, w1, mask = _edge_masks(slot_lo, slot_hi)
    L1, L1c, L2 = kvm.L1.words[w0:w1], kvm.L1c.words[w0:w1], w.L2.words[w0:w1]
    if kvm.logging:
        fetched = L1 & mask
        L1c &= ~mask
        L1c |= fetched
        if not kvm.manual_protect:
            L1 &= ~mask
            kvm.protected.words[w0:w1] |= fetched
    L2 |= L1c & mask


def bulk_path(path: str | None = None) -> str:
    """Which fast-path loop a bulk sync runs: ``"numba"`` (the compiled kernel) or ``"numpy"``.
    ``path``, or else the environment variable ``DIRTYPROOF_BULK``, chooses; by default the
    kernel when numba can be imported, else numpy. Asking for "numba" without numba raises
    ``ValueError`` rather than silently measuring or testing the other path."""
    asked = path or os.environ.get("DIRTYPROOF_BULK") or None
    if asked not in (None, "numba", "numpy"):
        raise ValueError(f"bulk path {asked!r}: expected 'numba' or 'numpy'")
    if asked == "numpy":
        return "numpy"
    if bulk_kernel.kernel() is None:
        if asked == "numba":
            raise ValueError("bulk path 'numba' asked for, but numba is not installed "
                             "(pip install 'dirtyproof[fast]')")
        return "numpy"
    return "numba"


def _fast_block(w, rb, path: str) -> int:
    """GET/OR of the block's slots and the word-at-a-time xchg into ``bmap``: one compiled pass
    (``path`` "numba") or numpy ufuncs chunk by chunk ("numpy")."""
    kvm = w.kvm
    base, nw = rb.offset >> 6, rb.words()
    L1, L1c, L2, prot = kvm.L1.words, kvm.L1c.words, w.L2.words, kvm.protected.words
    bmap = rb.bmap.words
    logging, legacy = kvm.logging, not kvm.manual_protect
    if path == "numba":
        num_dirty = bulk_kernel.kernel()(L1, L1c, L2, prot, bmap, base, 0, nw, logging, legacy)
        rb.clear_bmap.fill(True)                      # every word's remote clear is owed
        return int(num_dirty)
    n = min(CHUNK_WORDS, nw)
    tmp = np.empty(n, dtype=np.uint64)
    cnt = np.empty(n, dtype=np.uint8)
    num_dirty = 0
    for a in range(0, nw, CHUNK_WORDS):
        b = min(a + CHUNK_WORDS, nw)
        k = b - a
        l1c, l2, bm = L1c[base + a:base + b], L2[base + a:base + b], bmap[a:b]
        if logging:                                   # KVM_GET_DIRTY_LOG: whole words
            np.copyto(l1c, L1[base + a:base + b])
            if legacy:
                prot[base + a:base + b] |= l1c
                L1[base + a:base + b] = 0
        np.bitwise_or(l2, l1c, out=l2)                # OR into L2
        t, c = tmp[:k], cnt[:k]                       # xchg into bmap, count the new bits
        np.bitwise_not(bm, out=t)
        np.bitwise_and(t, l2, out=t)
        np.bitwise_count(t, out=c)
        num_dirty += int(c.sum(dtype=np.uint32))       # at most 64 * CHUNK_WORDS: no overflow
        np.bitwise_or(bm, l2, out=bm)
        l2[:] = 0
    rb.clear_bmap.fill(True)                          # every chunk's remote clear is owed
    return num_dirty


def _slow_block(w, rb) -> int:
    """GET/OR of the block's slots, then the page-at-a-time sync of the whole block at once."""
    kvm = w.kvm
    for s in w.slots:
        if s.block == rb.index:
            _log_sync_masked(w, s.start, s.end)
    lo, hi = rb.offset, rb.offset + rb.pages
    dirty = _extract(w.L2.words, lo, rb.pages)        # test-and-clear of every L2 bit
    w0, w1, mask = _edge_masks(lo, hi)
    w.L2.words[w0:w1] &= ~mask
    if kvm.manual_protect and kvm.logging:            # the per-page remote clear (L1c mask)
        m = kvm.L1c.words[w0:w1] & mask
        kvm.L1.words[w0:w1] &= ~m
        kvm.protected.words[w0:w1] |= m
        kvm.L1c.words[w0:w1] &= ~mask
    bmap = rb.bmap.words                              # test-and-set, counting the new bits
    num_dirty = int(np.bitwise_count(dirty & ~bmap).sum(dtype=np.int64))
    bmap |= dirty
    return num_dirty


def migration_bitmap_sync_bulk(w, last_stage: bool = False, path: str | None = None) -> int:
    """One full ``migration_bitmap_sync`` of world ``w`` in bulk; returns the number of bits newly
    set in ``bmap``. Same end state as stepping the base design's sync alone (see the module doc);
    raises ``ValueError`` when that is not possible (:func:`check_bulk_applicable`). ``path``
    chooses the fast-path loop (:func:`bulk_path`); both give the same state."""
    check_bulk_applicable(w)
    path = bulk_path(path)
    mig = w.mig
    w.note_period(mig)          # as the end of the step before this sync would have
    mig.dirty_sync_count += 1
    total = 0
    for rb in w.blocks:
        n = _fast_block(w, rb, path) if rb.fast_path else _slow_block(w, rb)
        mig.migration_dirty_pages += n
        mig.num_dirty_pages_period += n
        total += n
    w.kvm.unsynced = [False] * len(w.slots)
    w.ghost.period_new_bits += total                  # bmap only grows during a sync
    w.design.after_sync(w)
    w.note_period(mig)

    return total


__all__ = ["migration_bitmap_sync_bulk", "check_bulk_applicable", "bulk_path", "CHUNK_WORDS", "SYNC_STEPS"]
