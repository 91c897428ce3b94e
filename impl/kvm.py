"""The KVM side of dirty logging: L1 (the kernel's per-memslot dirty log), write protection, and L1c
(QEMU's copy of the last GET, ``KVMSlot.dirty_bmap``).

L1, L1c and the write-protection map are indexed by ram_addr page like L2, so a slot is a range;
only pages inside slots are ever set.

In dirty ring mode (``KVM_CAP_DIRTY_LOG_RING``; Linux Documentation/virt/kvm/api.rst, QEMU
accel/kvm/kvm-all.c) there is no per-slot dirty log for vCPU writes. A vCPU's first write to a
write-protected page unprotects it and logs its GFN in that vCPU's hardware buffer (Intel PML),
which reaches the vCPU's **ring** at a VM exit (or when the buffer is full); a ring holding
``dirty_ring_size`` entries makes the vCPU exit (KVM_EXIT_DIRTY_RING_FULL) and wait for a reap.
QEMU harvests a ring's dirty entries (marks each page in its slot bitmap, ``KVMSlot.dirty_bmap``,
which is L1c here, and flags the entry collected); KVM_RESET_DIRTY_RINGS then recycles the
collected entries and write-protects their pages again. With ``dirty_ring_with_bitmap``
(KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP) writes KVM makes without a running vCPU (arm64's vGIC/ITS
table saves) go to a per-slot **backup bitmap**, which is L1 here, fetched by
KVM_GET_DIRTY_LOG only at the last stage (QEMU ``b20cc776922d``). KVM_CLEAR_DIRTY_LOG is never
used: QEMU enables manual protect only without the ring.
"""
from __future__ import annotations

from dataclasses import dataclass

from .bitmap import Bitmap
from .config import DIRTY_RING
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

    def __init__(self, slots: tuple[SlotSpec, ...], ram_pages: int, mode: str, vcpus: int = 1,
                 ring_size: int = 4, ring_buffer: int = 1, with_bitmap: bool = False):
        self.slots = slots
        self.mode = mode
        self.ring_mode = mode == DIRTY_RING
        self.ring_size = ring_size
        self.ring_buffer = ring_buffer
        self.with_bitmap = with_bitmap and self.ring_mode
        # dirty ring mode: per vCPU, the ring's entries not yet recycled ([page, collected], oldest
        # first) and the hardware buffer's pages not yet in the ring; empty in the other modes
        self.rings: list[list[list]] = [[] for _ in range(vcpus)] if self.ring_mode else []
        self.buffers: list[list[int]] = [[] for _ in range(vcpus)] if self.ring_mode else []
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
        """Whether GET leaves L1 and protection alone and CLEAR re-arms pages (never with the ring)."""
        return self.mode not in ("legacy", DIRTY_RING)

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
        for q in self.rings + self.buffers:
            q.clear()
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
        for q in self.rings + self.buffers:
            q.clear()

    # -- the guest ------------------------------------------------------------------------------
    def guest_write(self, page: int, cpu: int = 0) -> bool:
        """A vCPU store to ``page``: a write-protection fault marks it dirty and unprotects it.

        Returns whether the write was logged (a fault happened). In dirty ring mode the page
        goes to vCPU ``cpu``'s buffer (or straight to its ring without one); a full buffer is
        flushed to the ring by the exit it causes."""
        if self.logging and self.protected.test_and_clear(page):
            if not self.ring_mode:
                self.L1.set(page)
            elif self.ring_buffer == 0:
                self.rings[cpu].append([page, False])
            else:
                self.buffers[cpu].append(page)
                if len(self.buffers[cpu]) >= self.ring_buffer:
                    self.flush_buffer(cpu)
            return True
        return False

    def write_without_vcpu(self, page: int) -> bool:
        """A write KVM itself makes to guest memory with no running vCPU (arm64: the vGIC/ITS
        tables): logged in the backup bitmap (L1) when KVM has one. Returns whether it was."""
        if self.logging and self.with_bitmap:
            self.L1.set(page)
            return True
        return False

    # -- dirty ring (KVM_CAP_DIRTY_LOG_RING) ----------------------------------------------------
    def ring_full(self, cpu: int) -> bool:
        """Whether vCPU ``cpu``'s ring is (soft-)full: the vCPU exits with KVM_EXIT_DIRTY_RING_FULL
        and runs again only after a reset recycled entries."""
        return self.ring_mode and len(self.rings[cpu]) >= self.ring_size

    def flush_buffer(self, cpu: int) -> int:
        """A VM exit of vCPU ``cpu``: its buffer's pages reach its ring. Returns how many."""
        buf = self.buffers[cpu]
        n = len(buf)
        self.rings[cpu].extend([p, False] for p in buf)
        buf.clear()
        return n

    def dirty_ring_harvest(self, cpu: int) -> list[int]:
        """QEMU reads vCPU ``cpu``'s ring (mmap'd): the pages of its dirty entries, each entry
        flagged collected (KVM_DIRTY_GFN_F_RESET) for the next reset. Recording the pages is the
        caller's job (``World.kvm_dirty_ring_mark_page``)."""
        out = []
        for e in self.rings[cpu]:
            if not e[1]:
                e[1] = True
                out.append(e[0])
        return out

    def reset_dirty_rings(self) -> list[int]:
        """KVM_RESET_DIRTY_RINGS: in every ring, the collected entries from the oldest on (up to
        the first one not collected) are recycled and their pages write-protected again. Returns
        the pages reset."""
        out = []
        for ring in self.rings:
            k = 0
            while k < len(ring) and ring[k][1]:
                out.append(ring[k][0])
                k += 1
            del ring[:k]
        for p in out:
            self.protected.set(p)
        return out

    def ring_pages(self, collected: bool = True) -> list[int]:
        """Pages in some vCPU's buffer or ring (entries not recycled; ``collected=False``: only
        entries not yet collected)."""
        out = [p for buf in self.buffers for p in buf]
        out += [e[0] for ring in self.rings for e in ring if collected or not e[1]]
        return out

    # -- ioctls ---------------------------------------------------------------------------------
    def get_dirty_log(self, slot: SlotSpec) -> None:
        """KVM_GET_DIRTY_LOG: copy the slot's L1 into L1c; legacy mode also clears L1 and re-protects.
        With the dirty ring, only the backup bitmap exists: the GET moves it into L1c, over what
        L1c held (QEMU publishes the reaped bits first), and clears it; without the backup
        bitmap KVM refuses the ioctl: nothing happens."""
        if not self.logging:
            return
        if self.ring_mode:
            if self.with_bitmap:
                lo, hi = slot.start, slot.end
                mask = self.L1._range_mask_words(lo, hi)
                self.L1c.words = (self.L1c.words & ~mask) | (self.L1.words & mask)
                self.L1.words &= ~mask
                self.unsynced[slot.index] = True
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
