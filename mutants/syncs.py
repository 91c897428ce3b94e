"""Mutants of the syncs: L1 -> L2 -> bmap, the counters, setup and the last-stage sync."""
from __future__ import annotations

from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs.base import Step
from dirtyproof.impl.designs.legacy import Legacy
from dirtyproof.impl.steps import (CLEAR_BMAP_SET, COMPLETE_DRAINED, KVM_GET, KVM_OR, L2_READ_WORD, L2_XCHG,
                                   L2_ZERO_WORD, NOTE, SYNC_DONE)
from dirtyproof.impl.steps import Step as S


def _fast_path_word(w, rb, k: int) -> tuple[int, int]:
    """One atomic fast-path word: xchg L2 into bmap; returns (new bits, all bits fetched)."""
    base = rb.offset // rb.word_bits
    bits = w.L2.xchg_word(base + k, 0, rb.word_bits)
    old = rb.bmap.word(k)
    rb.bmap.set_word(k, old | bits)
    return (bits & ~old & WORD_MASK).bit_count(), bits.bit_count()


class NonAtomicXchg(Legacy):
    """The fast path reads an L2 word, and zeroes it in a later step instead of one ``xchg``: a
    device write in between is wiped. Realistic: replacing ``qatomic_xchg`` by a plain load and
    store, as a 'no contention here' optimisation would."""

    name = "nonatomic-xchg"
    summary = "mutant: fast-path L2 fetch-and-clear is a read, then a separate zeroing"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Fast path with the word read and zeroed in two steps; slow path as the base."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset // rb.word_bits
        for k in range(rb.words()):
            if w.L2.word(base + k, rb.word_bits):
                bits = w.L2.word(base + k, rb.word_bits)
                yield S(L2_READ_WORD, block=rb.index, word=base + k, value=bits)
                w.L2.set_word(base + k, 0, rb.word_bits)
                old = rb.bmap.word(k)
                num_dirty += (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                yield S(L2_ZERO_WORD, block=rb.index, word=base + k)
        rb.clear_bmap.fill(True)
        yield S(CLEAR_BMAP_SET, block=rb.index)
        return num_dirty


class SkipSlotOr(Legacy):
    """The log sync fetches every memslot but ORs all but the last into L2 (the fetched bits of the
    last slot are dropped). Realistic: an off-by-one in the memslot loop of
    ``kvm_physical_sync_dirty_bitmap``."""

    name = "skip-slot-or"
    summary = "mutant: log sync drops the last memslot's fetched bits"

    def kvm_physical_sync_dirty_bitmap(self, w, slot) -> Step:
        """As the base, except the last slot's L1c is never OR-ed into L2."""
        last = slot.index == len(w.slots) - 1
        yield from w.acquire("slots_lock")
        w.kvm.get_dirty_log(slot)
        yield S(KVM_GET, slot=slot.index)
        if not last:
            w.kvm_slot_sync_dirty_pages(slot)
        w.release("slots_lock")
        yield S(KVM_OR, slot=slot.index, note="(skipped)" if last else "")


class CountOutsideMutex(Legacy):
    """Adds the sync's new pages to ``migration_dirty_pages`` after dropping ``bitmap_mutex``, so
    the counter and ``bmap`` disagree in between. Realistic: the race fixed in QEMU 6.x when
    free-page hinting began clearing bmap concurrently (counter updates moved under the mutex)."""

    name = "count-outside-mutex"
    summary = "mutant: migration_dirty_pages updated after bitmap_mutex is released"

    def migration_bitmap_sync(self, w, last_stage: bool = False) -> Step:
        """As the base, with the counter updates after the mutex release (a step later)."""
        mig = w.mig
        mig.dirty_sync_count += 1
        yield from self.memory_global_dirty_log_sync(w)
        yield from w.acquire("bitmap_mutex")
        total = 0
        for rb in w.blocks:
            total += yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        w.release("bitmap_mutex")
        yield S(NOTE, text="bitmap_mutex released, counters not yet updated")
        mig.migration_dirty_pages += total
        mig.num_dirty_pages_period += total
        self.after_sync(w)
        yield S(SYNC_DONE, text="migration_bitmap_sync done, counters updated")


class DirtyCountRawBits(Legacy):
    """Counts every fetched bit as a new dirty page (``popcount(bits)`` instead of
    ``popcount(bits & ~bmap)``). Realistic: the counting bug a reviewer pointed out when the sync
    loop was rewritten word-at-a-time."""

    name = "dirty-count-raw-bits"
    summary = "mutant: migration_dirty_pages += popcount(bits), not the new bits"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Fast path returns the raw popcount; slow path as the base."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num = 0
        for k in range(rb.words()):
            if w.L2.word(rb.offset // rb.word_bits + k, rb.word_bits):
                num += _fast_path_word(w, rb, k)[1]
                yield S(L2_XCHG, block=rb.index, word=rb.offset // rb.word_bits + k)
        rb.clear_bmap.fill(True)
        yield S(CLEAR_BMAP_SET, block=rb.index)
        return num


class PeriodPopcount(Legacy):
    """``num_dirty_pages_period`` counts every fetched bit, not only bits new to bmap, so the
    throttle sees a dirty rate that includes pages still queued. Realistic: the seed series'
    background sync feeds the period from L2 popcounts."""

    name = "period-popcount"
    summary = "mutant: period counter adds popcount(bits) instead of new bits"

    def ramblock_sync_dirty_bitmap(self, w, rb) -> Step:
        """``migration_dirty_pages`` gets the new bits; the period counter the raw ones."""
        self._raw = 0
        n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        w.mig.migration_dirty_pages += n
        w.mig.num_dirty_pages_period += self._raw

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """The base sync, also counting every fetched bit in ``self._raw``."""
        num = 0
        if rb.fast_path:
            for k in range(rb.words()):
                if w.L2.word(rb.offset // rb.word_bits + k, rb.word_bits):
                    new, raw = _fast_path_word(w, rb, k)
                    num += new
                    self._raw += raw
                    yield S(L2_XCHG, block=rb.index, word=rb.offset // rb.word_bits + k)
            rb.clear_bmap.fill(True)
            yield S(CLEAR_BMAP_SET, block=rb.index)
            return num
        for k in range(rb.pages):
            dirty = yield from self.sync_one_page(w, rb, k)
            if dirty:
                self._raw += 1
                if not rb.bmap.test_and_set(k):
                    num += 1
        return num


class NoFinalSync(Legacy):
    """``ram_save_complete`` sends what ``bmap`` holds without a last-stage sync. Realistic: a
    postcopy/COLO condition (``if (!migration_in_postcopy())``) inverted or widened."""

    name = "no-final-sync"
    summary = "mutant: completion skips the last-stage sync"

    def ram_save_complete(self, w) -> Step:
        """Send under ``bitmap_mutex`` until ``bmap`` is clean, with no sync first."""
        yield from w.acquire("bitmap_mutex")
        while (yield from self.ram_find_and_save_block(w)):
            pass
        w.release("bitmap_mutex")
        yield S(COMPLETE_DRAINED)


class BmapReusedOnRestart(Legacy):
    """A restarted migration reuses the cancelled attempt's RAMState and bitmaps instead of
    setting ``bmap`` all ones again, so it skips pages only the discarded destination received.
    Realistic: an ``if (!rs)`` / ``if (!block->bmap)`` guard that also skips the initialisation."""

    name = "bmap-reused-on-restart"
    summary = "mutant: a restarted migration reuses the cancelled attempt's bmap and counter"
    _bitmaps_allocated = False          # set once the first attempt has allocated the bitmaps

    def ram_save_setup(self, w) -> Step:
        """``ram_state_init`` only the first time; later the old counter (bmap's popcount) is kept."""
        mig = w.mig
        reused = self._bitmaps_allocated
        mig.migration_dirty_pages = w.bmap_popcount() if reused else w.geometry.total_pages
        mig.time_last_bitmap_sync = w.clock_ms
        yield from self.ram_init_bitmaps(w)

    def ram_list_init_bitmaps(self, w) -> None:
        """Initialise the bitmaps only the first time."""
        if self._bitmaps_allocated:
            return
        self._bitmaps_allocated = True
        super().ram_list_init_bitmaps(w)


class BmapInitLastPageMissing(Legacy):
    """Counts a block's pages as the index of its last page (``(used_length - 1) >> TARGET_PAGE_BITS``)
    in the helper that both ``ram_state_init`` and ``ram_list_init_bitmaps`` use: ``bmap`` misses
    each block's last page. Harmless on a first attempt (L2 is all ones from RAMBlock creation),
    a lost page after cancel and restart. Realistic: the classic length-versus-last-index slip."""

    name = "bmap-init-last-page-missing"
    summary = "mutant: bmap and the counter start one page short per block"

    def ram_save_setup(self, w) -> Step:
        """``ram_state_init`` with the short page count."""
        mig = w.mig
        mig.migration_dirty_pages = sum(rb.pages - 1 for rb in w.blocks)
        mig.time_last_bitmap_sync = w.clock_ms
        yield from self.ram_init_bitmaps(w)

    def ram_list_init_bitmaps(self, w) -> None:
        """``bmap`` set over all but the last page of each block."""
        for rb in w.blocks:
            rb.bmap.fill(False)
            rb.bmap.set_range(0, rb.pages - 1)
            rb.clear_bmap.fill(False)
