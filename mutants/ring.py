"""Mutants of the dirty ring path (``Config.kvm_mode="dirty_ring"``, impl/kvm.py): broken only
in dirty ring worlds.

Their expectations are the manifest's ``dirty_ring`` section, hunted with the mode on."""
from __future__ import annotations

from dirtyproof.impl.designs.base import Design, Step
from dirtyproof.impl.steps import NOTE, RING_PUBLISH, RING_REAP, RING_RESET
from dirtyproof.impl.steps import Step as S


class RingResetBeforeRecord(Design):
    """The reap reads every ring, flags the entries collected and issues KVM_RESET_DIRTY_RINGS
    at once (one ioctl early, to let the vCPUs run sooner), and marks the harvested pages in the
    slot bitmaps from its local list in the next step. Between the two steps the pages are in no
    layer: re-protected, out of the rings, not yet in ``KVMSlot.dirty_bmap``."""

    name = "ring-reset-before-record"
    summary = "mutant: dirty ring reap resets the rings before it marks the harvested pages"

    def kvm_dirty_ring_reap(self, w) -> Step:
        """Harvest every ring and reset (one step), then mark the pages (the next step)."""
        yield from w.acquire("slots_lock")
        harvested = []
        for cpu in range(len(w.kvm.rings)):
            harvested += w.kvm_dirty_ring_harvest(cpu)
        if harvested:
            w.kvm_reset_dirty_rings()
            yield S(RING_RESET, value=len(harvested), text=f"rings harvested and KVM_RESET_DIRTY_RINGS: "
                    f"{len(harvested)} entries recycled before their pages are marked")
        for p in harvested:
            w.kvm_dirty_ring_mark_page(p)
        w.release("slots_lock")
        yield S(NOTE, text=f"{len(harvested)} harvested page(s) marked in the slot bitmaps, slots_lock released")


class RingLazyReset(Design):
    """The reap issues KVM_RESET_DIRTY_RINGS first and harvests after it, so the entries it
    collects are recycled only by the next reap (one ioctl per reap either way, and the vCPUs get
    their entries back sooner). By then the log sync may have published and sent the page; a
    write in between finds the page writable (its entry is not recycled, so no fault, no new
    entry), and the late reset write-protects it with that write in no layer."""

    name = "ring-lazy-reset"
    summary = "mutant: dirty ring reap resets before it harvests (each reap recycles the previous one's entries)"

    def kvm_dirty_ring_reap(self, w) -> Step:
        """KVM_RESET_DIRTY_RINGS of what earlier reaps collected, then the harvest (marked)."""
        yield from w.acquire("slots_lock")
        reset = w.kvm_reset_dirty_rings()
        total = 0
        for cpu in range(len(w.kvm.rings)):
            pages = w.kvm_dirty_ring_harvest(cpu)
            for p in pages:
                w.kvm_dirty_ring_mark_page(p)
            total += len(pages)
        w.release("slots_lock")
        yield S(RING_REAP, value=(-1, ()), text=f"KVM_RESET_DIRTY_RINGS first ({reset} entries of earlier "
                f"reaps recycled), then {total} entries harvested and marked, slots_lock released")


class RingSyncNoKick(Design):
    """The log sync reaps without ``kvm_cpu_synchronize_kick_all`` (the kick is a round trip to
    every vCPU thread): what a vCPU's hardware buffer holds reaches its ring only at the vCPU's
    next exit, so the sync misses writes made before it began. QEMU's rule; no write is lost by
    it (the buffer is still a layer, and the VM's stop flushes it before the last stage)."""

    name = "ring-sync-no-kick"
    summary = "mutant: the dirty ring log sync reaps without kicking the vCPUs first"

    def kvm_dirty_ring_flush(self, w) -> Step:
        """Reap only."""
        yield from self.kvm_dirty_ring_reap(w)


class RingBackupBitmapSkipped(Design):
    """The log sync never fetches KVM's backup bitmap, not even at the last stage (as QEMU before
    ``b20cc77692`` on a kernel with KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP): a write KVM made without
    a running vCPU (arm64's ITS tables) never reaches the destination."""

    name = "ring-backup-bitmap-skipped"
    summary = "mutant: the dirty ring's last-stage sync does not collect the backup bitmap"

    def kvm_log_sync_global(self, w, last_stage: bool) -> Step:
        """Flush the rings, publish the slot bitmaps; no KVM_GET_DIRTY_LOG of the backup bitmap."""
        yield from self.kvm_dirty_ring_flush(w)
        yield from w.acquire("slots_lock")
        for i, s in enumerate(w.slots):
            w.kvm_slot_sync_dirty_pages(s)
            w.kvm_slot_reset_dirty_pages(s)
            if i == len(w.slots) - 1:
                w.release("slots_lock")
            yield S(RING_PUBLISH, slot=s.index, value=False)
