"""Held-out broken designs in which a second actor (the main-loop timer) races the sender or a sync.

HELD OUT: never tune a search on these (see README.md).
"""
from __future__ import annotations

from dirtyproof.impl.designs import Periodic
from dirtyproof.impl.steps import NOTE
from dirtyproof.impl.steps import Step as S


class PeriodicTimerPreClearsChunks(Periodic):
    """The 5 s main-loop tick issues the owed chunk clears itself, ahead of the sender.

    The mistake: ``KVM_CLEAR_DIRTY_LOG`` costs the migration thread an ioctl per chunk in the
    middle of its send loop; a patch lets ``cpu_throttle_dirty_sync_timer_tick`` (migration/cpu-throttle.c,
    main loop, BQL held) walk every RAMBlock's ``clear_bmap`` and do
    ``migration_clear_memory_region_dirty_bitmap`` for each owed chunk, so the sender usually finds
    the clear already done. QEMU only ever takes a ``clear_bmap`` bit in the thread that is about
    to read the chunk, under ``bitmap_mutex`` (``migration_bitmap_clear_dirty``, migration/ram.c).
    The tick holds the BQL, which the sender does not take.

    Why it loses a write (manual-protect modes): the tick takes chunk c's ``clear_bmap`` bit; before
    its CLEAR ioctl runs, the sender finds no clear owed for c, takes a page of c that the last sync
    moved into ``bmap`` and reads it. The guest writes the page again (unprotected since the GET,
    no fault). The tick's CLEAR, masked by L1c, now erases that L1 bit. Expected violated
    property: ``coverage`` at the tick's CLEAR.
    """

    name = "heldout2-timer-pre-clears-chunks"
    summary = "the periodic tick takes owed clear_bmap bits and issues the CLEARs itself (BQL only)"
    breaks = "coverage"

    def cpu_throttle_dirty_sync_timer_tick(self, w):
        """The tick as QEMU's, then the pre-clear of every owed chunk of every block."""
        yield from super().cpu_throttle_dirty_sync_timer_tick(w)
        if w.mig is None or w.mig.phase != "active":
            return
        for rb in w.blocks:
            for chunk in range(rb.clear_bmap.nbits):
                if rb.clear_bmap.test(chunk):
                    start, _ = rb.chunk_range(chunk)
                    yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, start)


class PeriodicTimerRecountsDirtyPages(Periodic):
    """The 5 s tick recomputes ``migration_dirty_pages`` from the bitmaps, block by block, under the BQL only.

    The mistake: to stop the pending estimate from drifting, a patch makes the tick re-derive
    ``migration_dirty_pages`` as the sum of ``bitmap_count_one(bmap)`` over the RAM list, holding
    the BQL (enough to walk ``ram_list``) but not ``bitmap_mutex``. In QEMU every writer of that
    counter holds ``bitmap_mutex``: ``ramblock_sync_dirty_bitmap`` inside ``migration_bitmap_sync``
    and ``migration_bitmap_clear_dirty`` under the send loop's lock (migration/ram.c; the lock was
    put there for a concurrent writer, free page hinting, by Wei Wang's ``migration: use
    bitmap_mutex in migration_bitmap_clear_dirty``, 2018, QEMU 3.1).

    Why it breaks: the walk takes a step per block; the sender, which holds ``bitmap_mutex`` and not
    the BQL, takes and sends pages of a block already counted; the tick then stores the stale sum,
    larger than ``bmap``'s popcount. Expected violated property: ``dirty-pages-count`` once the
    mutex is free.
    """

    name = "heldout2-timer-recounts-dirty-pages"
    summary = "the periodic tick re-derives migration_dirty_pages from bmap block by block, BQL only"
    breaks = "dirty-pages-count"

    def cpu_throttle_dirty_sync_timer_tick(self, w):
        """The tick as QEMU's, then the recount (one step per block, the store after the last)."""
        yield from super().cpu_throttle_dirty_sync_timer_tick(w)
        if w.mig is None or w.mig.phase != "active":
            return
        total = 0
        for rb in w.blocks:
            total += rb.bmap.popcount()
            yield S(NOTE, block=rb.index, text=f"timer counts {rb.idstr}.bmap: running total {total}")
        w.mig.migration_dirty_pages = total
