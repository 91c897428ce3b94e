"""Held-out broken designs whose ``bitmap_mutex`` section is too short (no deadlock, a property breaks).

HELD OUT: never tune a search on these (see README.md).
"""
from __future__ import annotations

from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import Periodic
from dirtyproof.impl.steps import CLEAR_BMAP_SET, L2_XCHG, NOTE, SYNC_DONE
from dirtyproof.impl.steps import Step as S


def _note_sync_begin(w, background: bool) -> None:
    """Tell a world that keeps the sync's ``bitmap_mutex`` ghost by hand (main at a4ac7e1) that a
    sync section starts; a later world keeps it from the thread's regions and has no such call."""
    note = getattr(w, "note_sync_begin", None)
    if note is not None:
        note(background=background)


def _note_sync_end(w) -> None:
    """The end of that section, for the same world (see :func:`_note_sync_begin`)."""
    note = getattr(w, "note_sync_end", None)
    if note is not None:
        note()


class PeriodicSlowPathPerPageMutex(Periodic):
    """The slow-path (unaligned block) sync takes ``bitmap_mutex`` per page, not per sync.

    The mistake: to let the sender make progress during the long page-by-page walk of an
    unaligned RAMBlock, a patch moves the lock from ``migration_bitmap_sync`` (which holds
    ``bitmap_mutex`` around every ``ramblock_sync_dirty_bitmap``, migration/ram.c) into the
    per-page loop of ``cpu_physical_memory_sync_dirty_bitmap``. Each page's L2 test-and-clear,
    remote clear and ``bmap`` set stay atomic, so no mark is lost; but the block's count of new
    pages is still returned at the end and added to ``migration_dirty_pages`` by
    ``ramblock_sync_dirty_bitmap``, after the per-page sections.

    Why it breaks: between two pages the mutex is free and ``bmap`` already holds the pages set so
    far while ``migration_dirty_pages`` does not count them; the sender, which decides on the
    counter and decrements it, runs there. Expected violated property: ``dirty-pages-count``
    (the counter differs from ``bmap``'s popcount while ``bitmap_mutex`` is free).
    """

    name = "heldout2-slow-path-per-page-mutex"
    summary = "slow-path sync locks bitmap_mutex per page; the block's count is added after the loop"
    breaks = "dirty-pages-count"

    def migration_bitmap_sync(self, w, last_stage: bool = False):
        """Log sync, then each block: fast-path blocks under one mutex section, slow-path blocks
        with the mutex taken per page inside the block's sync; then the throttle check."""
        mig = w.mig
        mig.dirty_sync_count += 1
        yield from self.memory_global_dirty_log_sync(w)
        for rb in w.blocks:
            if rb.fast_path:
                yield from w.acquire("bitmap_mutex")
                _note_sync_begin(w, self.background)
                yield from self.ramblock_sync_dirty_bitmap(w, rb)
                _note_sync_end(w)
                w.release("bitmap_mutex")
            else:
                yield from self.ramblock_sync_dirty_bitmap(w, rb)
        self.after_sync(w)
        yield S(SYNC_DONE)

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        """Fast path as QEMU's (the caller holds the mutex); slow path: mutex per page."""
        if rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        for k in range(rb.pages):
            yield from w.acquire("bitmap_mutex")
            _note_sync_begin(w, self.background)
            dirty = yield from self.sync_one_page(w, rb, k)
            if dirty and not rb.bmap.test_and_set(k):
                num_dirty += 1
            _note_sync_end(w)
            w.release("bitmap_mutex")
            # the unlock is where another thread can take the mutex: it ends a step
            yield S(NOTE, block=rb.index, text=f"sync drops bitmap_mutex after {rb.idstr}+{k}")
        return num_dirty


class PeriodicSyncYieldsMutexPerWord(Periodic):
    """Every sync drops ``bitmap_mutex`` after each L2 word, and sets ``clear_bmap`` in a last section.

    The mistake: for a very large RAMBlock the fast-path walk holds ``bitmap_mutex`` for a long
    time and the sender stalls; a patch releases and re-takes the mutex around each word of the
    walk (counting each word's new pages into ``migration_dirty_pages`` and the period inside its
    section, so the counters stay right), and sets the block's ``clear_bmap`` bits in one more
    section after the walk. In QEMU's ``cpu_physical_memory_sync_dirty_bitmap`` (include/exec/ram_addr.h)
    ``clear_bmap_set`` follows the word loop inside the same ``bitmap_mutex`` section that
    ``migration_bitmap_sync`` holds, so the sender never sees a new ``bmap`` bit whose chunk clear
    is not yet owed.

    Why it loses a write (manual-protect modes): between a word's section and the ``clear_bmap``
    section the sender (or the drain) takes a page just moved into ``bmap`` and reads it with no
    clear owed. The guest writes it again (unprotected since the GET, no fault). Then the chunk's
    clear becomes owed and the sender's CLEAR, masked by L1c (which holds the page from this
    sync's GET), erases that L1 bit. Expected violated property: ``coverage`` at that CLEAR.
    """

    name = "heldout2-sync-yields-mutex-per-word"
    summary = "the sync releases bitmap_mutex after every L2 word; clear_bmap set in a later section"
    breaks = "coverage"

    def migration_bitmap_sync(self, w, last_stage: bool = False):
        """Log sync, then each block's sync taking and dropping the mutex itself; then the tail."""
        mig = w.mig
        mig.dirty_sync_count += 1
        yield from self.memory_global_dirty_log_sync(w)
        for rb in w.blocks:
            yield from self.ramblock_sync_dirty_bitmap(w, rb)
        self.after_sync(w)
        yield S(SYNC_DONE)

    def ramblock_sync_dirty_bitmap(self, w, rb):
        """The counters are updated inside each section by the block's sync (nothing to add here)."""
        yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        """Fast path: one mutex section per non-zero L2 word (xchg, ``bmap`` OR, counters), then
        one section for ``clear_bmap``. Slow path: one section per page, counters inside."""
        mig = w.mig
        total = 0
        if rb.fast_path:
            base = rb.offset // rb.word_bits
            for k in range(rb.words()):
                if not w.L2.word(base + k, rb.word_bits):
                    continue
                yield from w.acquire("bitmap_mutex")
                bits = w.L2.xchg_word(base + k, 0, rb.word_bits)
                old = rb.bmap.word(k)
                n = (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                mig.migration_dirty_pages += n
                mig.num_dirty_pages_period += n
                total += n
                w.release("bitmap_mutex")
                yield S(L2_XCHG, block=rb.index, word=base + k)
            yield from w.acquire("bitmap_mutex")
            rb.clear_bmap.fill(True)
            w.release("bitmap_mutex")
            yield S(CLEAR_BMAP_SET, block=rb.index)
        else:
            for k in range(rb.pages):
                yield from w.acquire("bitmap_mutex")
                dirty = yield from self.sync_one_page(w, rb, k)
                if dirty and not rb.bmap.test_and_set(k):
                    mig.migration_dirty_pages += 1
                    mig.num_dirty_pages_period += 1
                    total += 1
                w.release("bitmap_mutex")
        return total
