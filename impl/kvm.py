"""The KVM side of dirty logging: L1 (the kernel's per-memslot dirty log), write protection, and L1c
(QEMU's copy of the last GET, ``KVMSlot.dirty_bmap``).

L1, L1c and the write-protection map are indexed by ram_addr page like L2, so a slot is a range;
only pages inside slots are ever set.
"""
from __future__ import annotations

from dataclasses import dataclass

from .bitmap import Bitmap
from .geometry import SlotSpec


@dataclass
class ClearEvent:
    """What one KVM_CLEAR_DIRTY_LOG did: the pages in its mask, and those of them whose dirty bit
    it cleared without QEMU having fetched it into L1c."""

    slot: int
    start: int
    end: int
    mask: list[int]
    unfetched: list[int]


class KVM:
    """Per-memslot dirty log in one of three modes (see :class:`~dirtyproof.impl.config.Config`)."""

    def __init__(self, slots: tuple[SlotSpec, ...], ram_pages: int, mode: str):
        self.slots = slots
        self.mode = mode
        self.logging = False
        self.log_starts = 0          # how many times logging was started (the world's ghost reads it)
        self.L1 = Bitmap(ram_pages)
        self.L1c = Bitmap(ram_pages)
        self.protected = Bitmap(ram_pages)
        # A slot whose GET has copied bits into L1c that are not yet OR-ed into L2: those bits are
        # in no other layer in legacy mode, so coverage must count them.
        self.unsynced = [False] * len(slots)
        self.slot_mask = Bitmap(ram_pages)
        for s in slots:
            self.slot_mask.set_range(s.start, s.end)

    @property
    def manual_protect(self) -> bool:
        """Whether GET leaves L1 and protection alone and CLEAR re-arms pages."""
        return self.mode != "legacy"

    def slot_of(self, page: int) -> SlotSpec:
        """The memslot holding ram_addr ``page``."""
        for s in self.slots:
            if s.start <= page < s.end:
                return s
        raise ValueError(f"page {page} is in no memslot")

    # -- logging on/off (memory_global_dirty_log_start/stop -> KVM_MEM_LOG_DIRTY_PAGES) ---------
    def log_start(self) -> None:
        """Start dirty logging: every page armed (protected, bit clear), or with initially-set every bit set."""
        self.logging = True
        self.log_starts += 1
        self.L1c.fill(False)
        self.unsynced = [False] * len(self.slots)
        if self.mode == "initially_set":
            self.L1.words[:] = self.slot_mask.words
            self.protected.fill(False)
        else:
            self.L1.fill(False)
            self.protected.words[:] = self.slot_mask.words

    def log_stop(self) -> None:
        """Stop dirty logging: nothing is tracked and nothing protected any more."""
        self.logging = False
        self.L1.fill(False)
        self.L1c.fill(False)
        self.protected.fill(False)
        self.unsynced = [False] * len(self.slots)

    # -- the guest ------------------------------------------------------------------------------
    def guest_write(self, page: int) -> bool:
        """A vCPU store to ``page``: a write-protection fault marks it dirty and unprotects it.

        Returns whether the write was logged (a fault happened)."""
        if self.logging and self.protected.test_and_clear(page):
            self.L1.set(page)
            return True
        return False

    # -- ioctls ---------------------------------------------------------------------------------
    def get_dirty_log(self, slot: SlotSpec) -> None:
        """KVM_GET_DIRTY_LOG: copy the slot's L1 into L1c; legacy mode also clears L1 and re-protects."""
        if not self.logging:
            return
        lo, hi = slot.start, slot.end
        mask = self.L1._range_mask_words(lo, hi)
        fetched = self.L1.words & mask
        self.L1c.words = (self.L1c.words & ~mask) | fetched
        if not self.manual_protect:
            self.L1.words &= ~mask
            self.protected.words |= fetched
        self.unsynced[slot.index] = True

    def clear_dirty_log(self, slot: SlotSpec, start: int, end: int,
                        mask: Bitmap | None = None) -> ClearEvent | None:
        """KVM_CLEAR_DIRTY_LOG on pages [start, end) of ``slot``, mask taken from L1c.

        The masked pages lose their L1 bit and are re-protected; L1c is cleared over the range.
        ``mask`` lets a broken design pass a mask of its own (the spec checks it was fetched).
        In legacy mode QEMU issues no CLEAR at all."""
        if not self.manual_protect or not self.logging:
            return None
        start, end = max(start, slot.start), min(end, slot.end)
        if start >= end:
            return None
        rng = self.L1c._range_mask_words(start, end)
        m = (mask.words if mask is not None else self.L1c.words) & rng
        # dirty bits the CLEAR throws away that QEMU never fetched (a clean bit in the mask is harmless)
        unfetched = m & ~self.L1c.words & self.L1.words
        self.L1.words &= ~m
        self.protected.words |= m
        self.L1c.words &= ~rng
        tmp = Bitmap(self.L1.nbits)
        tmp.words = m
        bad = Bitmap(self.L1.nbits)
        bad.words = unfetched
        return ClearEvent(slot.index, start, end, tmp.range_bits(start, end), bad.range_bits(start, end))
