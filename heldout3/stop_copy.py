"""HELD OUT (third set): the order of the stop-and-copy phase (migration/migration.c
``migration_completion``, migration/ram.c ``ram_save_complete``). HELD OUT: never tune on these.
"""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy
from dirtyproof.impl.steps import COMPLETE_DRAINED
from dirtyproof.impl.steps import Step as S


class LegacyDrainBeforeLastSync(Legacy):
    """``ram_save_complete`` drains ``bmap`` first and runs the last-stage sync after it.

    Mistake: the remaining dirty pages are sent first (they are known already) and the last
    sync comes after the drain, with nothing sending what it finds. QEMU (migration/ram.c,
    ``ram_save_complete``): ``migration_bitmap_sync_precopy(rs, true)`` first, then
    ``ram_find_and_save_block`` until ``bmap`` is clean, all with the VM stopped. Scenario: a page
    written after the exact-pending sync and before ``vm_stop``: the last sync moves it into
    ``bmap`` after the drain, and the destination keeps the older copy."""

    name = "h3-drain-before-last-sync"
    summary = "legacy: ram_save_complete sends the dirty pages, then runs the last-stage sync"
    breaks = "no-loss"

    def ram_save_complete(self, w):
        """The drain under ``bitmap_mutex``, then the last-stage sync."""
        yield from w.acquire("bitmap_mutex")
        while (yield from self.ram_find_and_save_block(w)):
            pass
        w.release("bitmap_mutex")
        yield S(COMPLETE_DRAINED)
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)


class LegacyLastStageSkipsKvmSync(Legacy):
    """The last-stage sync skips the KVM log sync: only L2 goes into ``bmap``.

    Mistake: with the VM stopped KVM "has nothing new", so the last stage's
    ``memory_global_dirty_log_sync`` (the GET and the OR into L2 per memslot) is left out. QEMU:
    ``migration_bitmap_sync`` always calls ``memory_global_dirty_log_sync`` first (migration/ram.c;
    since 1e493be58708, QEMU 8.0, it passes ``last_stage`` down to the listeners, accel/kvm/kvm-all.c
    ``kvm_log_sync``), because KVM's log holds every write since the previous sync's GET, the ones
    before ``vm_stop`` included. Scenario: a vCPU write after the exact-pending sync's GET (it sets
    L1 only): the last stage never fetches it."""

    name = "h3-last-stage-skips-kvm-sync"
    summary = "legacy: the last-stage sync does not fetch KVM's dirty log"
    breaks = "no-loss"

    def memory_global_dirty_log_sync(self, w, last_stage=None):
        """Nothing once the VM is stopped for completion; otherwise every memslot as before."""
        if w.mig.phase == "completing":
            return
        yield from super().memory_global_dirty_log_sync(w, last_stage)
