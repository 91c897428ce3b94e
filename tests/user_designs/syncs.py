"""User-style designs of the L2 -> bmap sync (``cpu_physical_memory_sync_dirty_bitmap``) and the setup sync.

Each class overrides one or two methods of a shipped design, written from QEMU's code the way a
reviewer tries an alternative. Read the docstrings for the scenario (or the argument for safety)
and the QEMU code each one is modelled on.
"""
from __future__ import annotations

from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import Legacy
from dirtyproof.impl.designs.base import Step


def _popcount(x: int) -> int:
    return (x & WORD_MASK).bit_count()


# ---------------------------------------------------------------------------------------------
# correct


class FastPathLateStore(Legacy):
    """Fast path split per word: the ``xchg`` of an L2 word is one step, and the word's bits are
    OR-ed into ``bmap`` one step later (together with the next word's ``xchg``, or in a step of
    its own after the last word), all while ``bitmap_mutex`` is held.

    Modelled on the fast-path loop of ``cpu_physical_memory_sync_dirty_bitmap``
    (include/exec/ram_addr.h, QEMU 9.1-10.1; ``physical_memory_sync_dirty_bitmap`` in
    migration/ram.c on current master): ``bits = qatomic_xchg(&src[idx][offset], 0)`` followed by
    ``dest[k] |= bits`` in a second statement, so between the two the bits live only in the local
    ``bits``. A reviewer makes that gap one model step wide to see whether it matters.

    Why it is safe: the only reader of ``bmap`` is the sender, which needs ``bitmap_mutex``; the
    sync holds it from before the ``xchg`` to after the store. A write in the gap is logged anew
    (L1 by a fault, or L2 by a device), so it is not lost either. The ``clear_bmap`` bits are set
    after the last store, as in QEMU.

    Today's checker: the bits in the local variable are in no layer it knows (only the base slow
    path's own bookkeeping marks a sync's carry), so per-step ``coverage`` may fire in the gap: a
    false alarm, no write is lost."""

    name = "user-fast-path-late-store"
    summary = "fast path stores each xchg-ed L2 word into bmap one step later, under bitmap_mutex"
    expected = "safe"
    layer = "L2 fetch (fast path)"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Fast path with the store of word k's bits deferred to the next step; slow path unchanged."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset // w.L2.word_bits          # BITS_PER_LONG of the world's host
        pending = None                       # (k, bits) fetched in the previous step, not stored yet

        def store(k: int, bits: int) -> int:
            old = rb.bmap.word(k)
            rb.bmap.set_word(k, old | bits)
            return _popcount(bits & ~old)

        for k in range(rb.words()):
            if w.L2.word(base + k):
                bits = w.L2.xchg_word(base + k, 0)
                if pending is not None:
                    num_dirty += store(*pending)
                pending = (k, bits)
                yield f"{rb.idstr}: xchg L2 word {base + k} (bits kept for the next step)"
        if pending is not None:
            num_dirty += store(*pending)
            yield f"{rb.idstr}: last fetched word stored into bmap word {pending[0]}"
        rb.clear_bmap.fill(True)
        yield f"{rb.idstr}: clear_bmap all set (remote clear owed)"
        return num_dirty


class SlowPathLocalSet(Legacy):
    """Slow path that test-and-clears L2 page by page (each with its remote clear, as QEMU
    9.1-10.1 does) into a local set for the whole block, and stores the set into ``bmap`` in one
    step at the end of the block loop.

    Modelled on the slow path of ``cpu_physical_memory_sync_dirty_bitmap`` (include/exec/ram_addr.h)
    calling ``cpu_physical_memory_test_and_clear_dirty`` (system/physmem.c) per page; the change
    resembles the current-master rework where ``physical_memory_test_and_clear_dirty`` gathers a
    whole range before anything else happens.

    Why it is safe: ``bitmap_mutex`` is held from the first test-and-clear to the store, so the
    sender never sees ``bmap`` without the gathered pages; each page's remote clear comes after its
    L2 bit was taken, so a later write faults again and is logged.

    Today's checker: after a page's remote clear the page is only in the local set, which no layer
    the checker knows covers; ``coverage`` may fire there: a false alarm."""

    name = "user-slow-path-local-set"
    summary = "slow path gathers the block's dirty pages in a local set, stored into bmap at the end"
    expected = "safe"
    layer = "L2 fetch (slow path)"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Slow path gathers, then one store step; fast path unchanged."""
        if rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        gathered = []
        for k in range(rb.pages):
            if (yield from self.sync_one_page(w, rb, k)):
                gathered.append(k)
        num_dirty = 0
        if gathered:
            for k in gathered:
                if not rb.bmap.test_and_set(k):
                    num_dirty += 1
            yield f"{rb.idstr}: {len(gathered)} gathered page(s) stored into bmap"
        return num_dirty


class SlowPathOneClearAtEnd(Legacy):
    """Slow path as on current QEMU master: per page, the L2 test-and-clear and the ``bmap``
    test-and-set in one step; then one remote clear of the whole block after the loop.

    Modelled on ``physical_memory_test_and_clear_dirty(start, len, client, bmap)`` in
    system/physmem.c on master (docs/qemu-semantics.md section 1-2: "L2 test-and-clear plus
    bmap set for every page, and then one remote clear of the whole range at the end"), as
    called from ``physical_memory_sync_dirty_bitmap`` in migration/ram.c.

    Why it is safe: the remote clear re-protects only pages fetched into L1c, which the last log
    sync OR-ed into L2 and which this loop has moved into ``bmap``; the sender cannot read any of
    them before the clear because the sync holds ``bitmap_mutex`` throughout. A write between the
    test-and-clear and the clear to a page already dirty in L1 goes unlogged, but the page is in
    ``bmap`` and is read only after the clear, so the write is sent."""

    name = "user-slow-path-one-clear-at-end"
    summary = "slow path: L2 test-and-clear + bmap set per page, one remote clear of the block at the end"
    expected = "safe"
    layer = "L2 fetch (slow path) / CLEAR"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Master's slow path; fast path unchanged."""
        if rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        for k in range(rb.pages):
            page = rb.offset + k
            if w.L2.test_and_clear(page):
                if not rb.bmap.test_and_set(k):
                    num_dirty += 1
                yield f"{rb.idstr}: L2 page {page} test-and-cleared into bmap"
        yield from self.memory_region_clear_dirty_bitmap(w, rb.offset, rb.offset + rb.pages)
        return num_dirty


class EagerClearNoClearBmap(Legacy):
    """A RAMBlock without ``clear_bmap``: the fast-path sync remote-clears the whole block eagerly
    after the ``xchg`` loop instead of setting ``clear_bmap`` (so the sender owes no chunk clear).

    Modelled on the ``else`` branch after the fast-path loop of
    ``cpu_physical_memory_sync_dirty_bitmap`` (include/exec/ram_addr.h): ``if (rb->clear_bmap)
    clear_bmap_set(...)``, else, commented "Slow path - still do that in a huge chunk",
    ``memory_region_clear_dirty_bitmap(rb->mr, start, length)``. The branch came with commit
    002cad6b16 "migration: Split log_clear() into smaller chunks" (Peter Xu, 2019) for blocks
    without a clear bitmap; before that commit every block was cleared this way.

    Why it is safe: the clear is done before ``bitmap_mutex`` is released, so every fetched page
    is re-protected before the sender can read it; its mask is L1c, all of it fetched and in
    ``bmap`` by then."""

    name = "user-eager-clear-no-clear-bmap"
    summary = "fast path clears the whole block eagerly under bitmap_mutex instead of setting clear_bmap"
    expected = "safe"
    layer = "clear_bmap / CLEAR"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Fast path with the eager clear; slow path unchanged (it clears per page anyway)."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset // w.L2.word_bits          # BITS_PER_LONG of the world's host
        for k in range(rb.words()):
            if w.L2.word(base + k):
                bits = w.L2.xchg_word(base + k, 0)
                old = rb.bmap.word(k)
                num_dirty += _popcount(bits & ~old)
                rb.bmap.set_word(k, old | bits)
                yield f"{rb.idstr}: xchg L2 word {base + k} into bmap word {k}"
        yield from self.memory_region_clear_dirty_bitmap(w, rb.offset, rb.offset + rb.pages)
        yield f"{rb.idstr}: eager remote clear of the block done"
        return num_dirty


class SkipSetupSync(Legacy):
    """``ram_init_bitmaps`` without the first sync: ``bmap`` is all ones anyway, so the setup
    sync is skipped (the first sync is then the first exact-pending one).

    Modelled on ``ram_init_bitmaps`` (migration/ram.c), which calls
    ``migration_bitmap_sync_precopy(rs, false)`` right after ``memory_global_dirty_log_start``;
    Peter Xu asked on qemu-devel (July 2021, thread on virtio-mem and ``ram_init_bitmaps``)
    "Do we need migration_bitmap_sync_precopy() even if dirty bmap is all 1's?".

    Why it is safe: every page is in ``bmap`` so every page is sent at least once; writes after
    log start are in L1 (by a fault, or because initially-set KVM reports every page) or in L2
    (devices), and the next sync fetches them. Without the setup sync ``clear_bmap`` stays clear,
    so no chunk clear is owed: in manual mode a page dirtied before its read keeps its L1 bit
    (nothing clears it) and is fetched again, which costs a resend, not a page."""

    name = "user-skip-setup-sync"
    summary = "ram_init_bitmaps skips the first sync (bmap is all ones anyway)"
    expected = "safe"
    layer = "setup"

    def ram_init_bitmaps(self, w) -> Step:
        """The base setup minus the first sync: take the base's steps up to its sync."""
        gen = super().ram_init_bitmaps(w)
        yield next(gen)                       # bitmaps initialised, dirty logging started
        gen.close()                           # the first sync never starts


# ---------------------------------------------------------------------------------------------
# broken


class BlockRelativeL2Index(Legacy):
    """Fast path that indexes L2 with the block-relative word number instead of the ram_addr one.

    Modelled on ``cpu_physical_memory_sync_dirty_bitmap`` (include/exec/ram_addr.h), which
    computes the L2 word as ``BIT_WORD((start + rb->offset) >> TARGET_PAGE_BITS)``; the bug drops
    ``rb->offset`` (the offset-versus-ram_addr mix-up that the 2019 clear-log series and the
    ``ramblock_sync_dirty_bitmap`` rework both had to get right). Layer: L2 fetch.

    Scenario (aligned geometry, a second fast-path block ``ram1`` at ram_addr page 64): the guest
    writes ``ram1`` page 70 after it was sent; the log sync puts the bit into L2 word 1, but the
    sync of ``ram1`` exchanges L2 word 0 (``ram0``'s) into ``ram1.bmap``. Word 1 is never
    fetched, so page 70's write is never sent again: ``no-loss`` fails at completion. (It also
    sends the wrong pages for the bits it took from ``ram0``'s word, and ``ram0`` loses those.)
    Blocks at offset 0 and slow-path blocks are unaffected, so the mixed geometry hides it."""

    name = "user-l2-block-relative-index"
    summary = "broken: fast path reads L2 word k instead of (offset/64)+k"
    expected = "unsafe"
    layer = "L2 fetch"
    breaks = "no-loss"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """The fast path with the wrong L2 index."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        for k in range(rb.words()):
            if w.L2.word(k):                              # should be rb.offset // word_bits + k
                bits = w.L2.xchg_word(k, 0)
                old = rb.bmap.word(k)
                num_dirty += _popcount(bits & ~old)
                rb.bmap.set_word(k, old | bits)
                yield f"{rb.idstr}: xchg L2 word {k} into bmap word {k}"
        rb.clear_bmap.fill(True)
        yield f"{rb.idstr}: clear_bmap all set (remote clear owed)"
        return num_dirty


class BmapWordOverwrite(Legacy):
    """Fast path that stores the fetched L2 word into ``bmap`` instead of OR-ing it in.

    Modelled on the fast-path loop of ``cpu_physical_memory_sync_dirty_bitmap``
    (include/exec/ram_addr.h, ``dest[k] |= bits``); the bug is the whole-word assignment the
    background-sync v1 series uses for ``shadow_bmap`` (``shadow[k] = dest[k]``, patch 2/7),
    carried over to ``bmap``. Layer: bmap.

    Scenario: a round is half sent, page P (bmap word k) still waits in ``bmap``; the guest writes
    another page Q of the same word; the exact-pending sync exchanges L2 word k (only Q's bit) and
    overwrites ``bmap`` word k, so P's bit is gone. P was never sent after its last write (or never
    sent at all): ``no-loss`` fails at completion. ``migration_dirty_pages`` is also wrong
    (``dirty-pages-count``), since the counter still adds only the new bits; the counter trips
    first in a run that checks everything."""

    name = "user-bmap-word-overwrite"
    summary = "broken: fast path does bmap[k] = bits instead of bmap[k] |= bits"
    expected = "unsafe"
    layer = "bmap"
    breaks = "no-loss"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """The fast path with the overwrite."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset // w.L2.word_bits          # BITS_PER_LONG of the world's host
        for k in range(rb.words()):
            if w.L2.word(base + k):
                bits = w.L2.xchg_word(base + k, 0)
                old = rb.bmap.word(k)
                num_dirty += _popcount(bits & ~old)
                rb.bmap.set_word(k, bits)                 # should be old | bits
                yield f"{rb.idstr}: xchg L2 word {base + k}, stored over bmap word {k}"
        rb.clear_bmap.fill(True)
        yield f"{rb.idstr}: clear_bmap all set (remote clear owed)"
        return num_dirty
