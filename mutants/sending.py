"""Mutants of the sender: the owed chunk clear and the KVM CLEAR it issues."""
from __future__ import annotations

from dirtyproof.impl.bitmap import Bitmap
from dirtyproof.impl.designs.base import Step
from dirtyproof.impl.designs.legacy import Legacy
from dirtyproof.impl.steps import BMAP_TAKE, CHUNK_TAKEN, DELIVER, KVM_CLEAR, READ
from dirtyproof.impl.steps import Step as S


class ReadBeforeClear(Legacy):
    """Reads the page before taking its chunk's owed remote clear. Realistic: the clear was moved
    out of ``migration_bitmap_clear_dirty`` into the save path, after ``ram_save_target_page``
    has already copied the page, as in early clear-log patches."""

    name = "read-before-clear"
    summary = "mutant: the page is read before the owed clear_bmap chunk clear"

    def migration_bitmap_clear_dirty(self, w, rb, page: int) -> Step:
        """``bmap`` test-and-clear only; the chunk clear is left for after the read."""
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        return ret

    def ram_save_page(self, w, rb, page: int) -> Step:
        """Read, then the owed chunk clear, then deliver."""
        addr = rb.offset + page
        version = w.read_page(addr)
        yield S(READ, block=rb.index, page=addr, value=version)
        yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        w.deliver(addr, version)
        yield S(DELIVER, block=rb.index, page=addr, value=version)


class ClearPreviousChunk(Legacy):
    """Computes the chunk to clear from ``page - 1``: the first page of a chunk clears the previous,
    already sent, chunk. Realistic: an ``ALIGN_DOWN(start - 1, size)`` off-by-one of the kind the
    2019 clear-log series fixed in its range arithmetic."""

    name = "clear-previous-chunk"
    summary = "mutant: the owed clear is issued for the chunk of page-1"

    def migration_clear_memory_region_dirty_bitmap(self, w, rb, page: int) -> Step:
        """Take ``page``'s clear_bmap bit, but CLEAR the chunk holding ``page - 1``."""
        chunk = rb.chunk_of(page)
        if rb.clear_bmap.test_and_clear(chunk):
            yield S(CHUNK_TAKEN, block=rb.index, chunk=chunk)
            start, end = rb.chunk_range(rb.chunk_of(max(page - 1, 0)))
            yield from self.memory_region_clear_dirty_bitmap(w, rb.offset + start, rb.offset + end)


class ClearMaskRange(Legacy):
    """Passes the whole range as the CLEAR mask instead of the bits fetched into the slot copy.
    Realistic: the ``KVM_CLEAR_DIRTY_LOG`` fast path handing KVM an all-ones bitmap for an aligned
    range, forgetting that only fetched bits may be cleared."""

    name = "clear-mask-range"
    summary = "mutant: KVM_CLEAR_DIRTY_LOG mask is the whole range, not L1c"

    def kvm_log_clear_one_slot(self, w, slot, start: int, end: int) -> Step:
        """As the base, with an all-ones mask over [start, end)."""
        yield from w.acquire("slots_lock")
        mask = Bitmap(w.ram_pages)
        mask.set_range(start, end)
        w.remote_clear(start, end, mask=mask)
        w.release("slots_lock")
        yield S(KVM_CLEAR, slot=slot.index, start=start, end=end, note="(mask: whole range)")


class ClearNoReprotect(Legacy):
    """A CLEAR that clears the dirty bits but leaves the pages writable. Realistic: a KVM-side bug
    where ``kvm_arch_mmu_enable_log_dirty_pt_masked`` is skipped (seen with PML/huge pages),
    modelled at design level by undoing the re-protection."""

    name = "clear-no-reprotect"
    summary = "mutant: KVM CLEAR clears dirty bits without write-protecting the pages"

    def kvm_log_clear_one_slot(self, w, slot, start: int, end: int) -> Step:
        """As the base; then the cleared pages lose their write protection."""
        yield from w.acquire("slots_lock")
        for ev in w.remote_clear(start, end):
            for p in ev.mask:
                w.kvm.protected.clear(p)
        w.release("slots_lock")
        yield S(KVM_CLEAR, slot=slot.index, start=start, end=end, note="(not re-protected)")
