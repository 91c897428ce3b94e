"""Held-out broken designs that port (or revert) a change QEMU really made to the lazy remote clear.

HELD OUT: never tune a search on these (see README.md).
"""
from __future__ import annotations

from dirtyproof.impl.bitmap import Bitmap
from dirtyproof.impl.designs import Legacy, Periodic
from dirtyproof.impl.steps import BMAP_TAKE, KVM_CLEAR
from dirtyproof.impl.steps import Step as S


class LegacyChunkClearAfterSend(Legacy):
    """The owed chunk clear is issued after the page is on the wire instead of before it.

    The mistake: a patch that wants the ``KVM_CLEAR_DIRTY_LOG`` ioctl (and the write-protect
    faults it re-arms) out of the way of the page's read moves
    ``migration_clear_memory_region_dirty_bitmap`` from the top of
    ``migration_bitmap_clear_dirty`` to after ``ram_save_target_page``. QEMU's comment at that call,
    since Peter Xu's lazy-clear series (``migration: Split log_clear() into smaller chunks``,
    002cad6b16, QEMU 4.1, July 2019; the comment survives in migration/ram.c up to the 2025
    last-round change) says the clear *must*
    come before any page of the chunk is sent: "Clearing it earlier won't be a problem, but too
    late will." This design is that revert.

    Why it loses a write (manual-protect KVM modes): a page dirtied since the last sync is
    unprotected and its L1 bit is in QEMU's slot copy L1c. The sender reads it (version v), the
    guest writes it again (no fault: it is not protected, L1 stays set), then the late CLEAR,
    masked by L1c, erases that L1 bit and re-protects the page. The second write is now marked
    nowhere. Expected violated property: ``coverage`` at the CLEAR (then ``no-loss`` at
    completion); the rule ``clear-before-read`` also reports the read.
    """

    name = "heldout2-chunk-clear-after-send"
    summary = "the owed chunk CLEAR is issued after the page's read (revert of the lazy-clear ordering)"
    breaks = "coverage"

    def migration_bitmap_clear_dirty(self, w, rb, page: int):
        """Only the ``bmap`` test-and-clear and the decrement; the chunk clear moved after the send."""
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        return ret

    def ram_find_and_save_block(self, w):
        """Find, take, send, and only then the owed remote clear of the page's chunk (too late)."""
        found = self.find_dirty_page(w)
        if found is None:
            return 0
        rb, page = found
        if (yield from self.migration_bitmap_clear_dirty(w, rb, page)):
            yield from self.ram_save_page(w, rb, page)
            yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
            return 1
        return 0


class PeriodicClearWholeChunkMask(Periodic):
    """The remote clear passes an all-ones mask over the chunk instead of the fetched bits.

    The mistake: ``kvm_log_clear_one_slot`` builds the ``KVM_CLEAR_DIRTY_LOG`` mask from the
    slot's ``dirty_bmap`` (QEMU's copy of what the last ``KVM_GET_DIRTY_LOG`` returned), so that
    only bits QEMU has already fetched are cleared (Peter Xu, ``kvm: Support KVM_CLEAR_DIRTY_LOG``,
    ff4aa11419, accel/kvm/kvm-all.c, QEMU 4.1, July 2019; ``kvm: Persistent per kvmslot dirty
    bitmap``, 9f4bf4baa8, keeps that copy between the GET and the CLEAR for this purpose). A "simplification" that clears the whole range, on the
    reasoning that the sender is about to send this chunk anyway, throws away dirty bits that
    appeared after the last GET: those pages are not in ``bmap`` and the sender will not send them.

    Why it loses a write (manual-protect modes): a protected page of the chunk, written after the
    last GET, faults and sets its L1 bit; the sender's all-ones CLEAR of the chunk erases it and
    re-protects the page; nothing else marks it. Expected violated property: ``coverage`` at the
    CLEAR (the rule ``clear-mask-fetched`` reports the same step).
    """

    name = "heldout2-clear-whole-chunk-mask"
    summary = "KVM_CLEAR_DIRTY_LOG with an all-ones mask over the range, not the fetched bits"
    breaks = "coverage"

    def kvm_log_clear_one_slot(self, w, slot, start: int, end: int):
        """One CLEAR of [start, end) of ``slot`` whose mask is every page of the range."""
        mask = Bitmap(w.ram_pages)
        mask.set_range(start, end)
        yield from w.acquire("slots_lock")
        w.remote_clear(start, end, mask)
        w.release("slots_lock")
        yield S(KVM_CLEAR, slot=slot.index, start=start, end=end, note="(all-ones mask)")
