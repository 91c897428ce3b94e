"""HELD OUT. A lock held too briefly, without any deadlock. Never tune a search on these designs;
they exist to measure."""
from __future__ import annotations

from dirtyproof.impl.designs import Periodic
from dirtyproof.impl.designs.base import Step


class PeriodicSearchOnlyLocked(Periodic):
    """``bitmap_mutex`` guards only ``find_dirty_block``; the ``bmap`` test-and-clear runs after
    the unlock, and QEMU's ``test_and_clear_bit`` is a plain load and store.

    Scenario (legacy KVM mode loses at once; manual mode at the chunk's next CLEAR): the sender
    finds page P, drops the mutex, and loads P's ``bmap`` word. The timer's sync (BQL, then the
    free ``bitmap_mutex``) exchanges the L2 word holding page Q (same word, written since its last
    send) into ``bmap``. The sender stores its stale word with P's bit cleared: Q's bit is gone,
    and Q's write is in no layer (legacy GET already cleared L1; in manual mode the owed CLEAR of
    Q's chunk clears it later). The counter is also off by one.

    Modelled from ``migration/ram.c`` ``ram_save_iterate`` / ``migration_bitmap_clear_dirty`` and
    ``include/qemu/bitops.h`` ``test_and_clear_bit`` (non-atomic); the lock placement is the inverse
    of "migration: Move bitmap_mutex out of migration_bitmap_clear_dirty()" (qemu-devel PULL 6/6,
    13 Jul 2021, which moved the lock up to cover the whole send loop): a
    search-only critical section, with the 9.2 timer (52ac968ab28b) as the concurrent writer.
    """

    name = "heldout-periodic-search-only-locked"
    summary = "held out: bitmap_mutex only around find_dirty_block; non-atomic bmap test-and-clear after unlock"
    breaks = "coverage"

    def ram_save_iterate(self, w) -> Step:
        sent = yield from self.ram_save_burst(w)
        yield f"ram_save_iterate: {sent} page(s)"

    def ram_save_complete(self, w) -> Step:
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        while (yield from self.ram_find_and_save_block(w)):
            pass
        yield "ram_save_complete: bmap empty"

    def ram_find_and_save_block(self, w) -> Step:
        yield from w.acquire("bitmap_mutex")
        found = self.find_dirty_page(w)
        w.release("bitmap_mutex")
        yield "find_dirty_block under bitmap_mutex, unlocked"
        if found is None:
            return 0
        rb, page = found
        if (yield from self.migration_bitmap_clear_dirty(w, rb, page)):
            yield from self.ram_save_page(w, rb, page)
            return 1
        return 0

    def migration_bitmap_clear_dirty(self, w, rb, page: int) -> Step:
        yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        k, bit = page >> 6, 1 << (page & 63)
        old = rb.bmap.word(k)
        yield f"{rb.idstr}: load bmap word {k}"
        ret = bool(old & bit)
        if ret:
            rb.bmap.set_word(k, old & ~bit)      # stale store: bits set since the load are lost
            w.mig.migration_dirty_pages -= 1
        yield f"{rb.idstr}: store bmap word {k} (page {rb.offset + page} {'was set' if ret else 'clean'})"
        return ret
