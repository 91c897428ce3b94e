"""Held-out broken designs that get the stop-and-copy order wrong.

HELD OUT: never tune a search on these (see README.md).
"""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy
from dirtyproof.impl.steps import STREAM_COMPLETE, VM_STOP
from dirtyproof.impl.steps import Step as S


class LegacyLogStopAtVmStop(Legacy):
    """Dirty logging is stopped as soon as the VM is stopped, before the last-stage sync.

    The mistake: "the guest is stopped, nothing can dirty memory any more": a patch moves
    ``memory_global_dirty_log_stop`` from the cleanup (``ram_save_cleanup`` after completion,
    migration/ram.c) up to right after ``vm_stop_force_state`` in ``migration_completion``
    (migration/migration.c), to spare the last sync's write-protection work. But the writes made
    since the previous ``KVM_GET_DIRTY_LOG`` are still only in KVM's dirty log; stopping the log
    (``KVM_MEM_LOG_DIRTY_PAGES`` off) throws them away before the last-stage sync fetches them.

    Why it loses a write: a page written after the exact-pending sync's GET has its only mark in
    L1; the log stop drops it, the last-stage sync fetches nothing for it and the drain does not
    send it. Expected violated property: ``coverage`` at the stop (then ``no-loss``).
    """

    name = "heldout2-log-stop-at-vm-stop"
    summary = "memory_global_dirty_log_stop right after vm_stop, before the last-stage sync"
    breaks = "coverage"

    def migration_completion(self, w):
        """BQL, stop the VM, stop dirty logging, ``ram_save_complete``; then the cleanup section."""
        mig = w.mig
        yield from w.acquire("BQL")
        mig.phase = "completing"
        w.vm_running = False
        w.kvm.log_stop()
        yield S(VM_STOP, note="and dirty log stopped")
        yield from self.ram_save_complete(w)
        mig.phase = "completed"
        w.release("BQL")
        yield S(STREAM_COMPLETE)
        yield from self.migration_iteration_finish(w)


class LegacyLogSyncBeforeVmStop(Legacy):
    """The last-stage sync's KVM part (GET and OR of every slot) runs before the VM is stopped.

    The mistake: ``KVM_GET_DIRTY_LOG`` over a large guest is the slow part of the last-stage sync,
    so a patch moves ``memory_global_dirty_log_sync`` out of the downtime: ``migration_completion``
    fetches every slot's dirty log while the vCPUs still run, then stops the VM and runs only the
    L2 -> ``bmap`` part (``ramblock_sync_dirty_bitmap`` over the blocks) and the drain. QEMU's
    ``ram_save_complete`` runs the whole ``migration_bitmap_sync_precopy(last_stage=true)`` after
    ``vm_stop_force_state`` (migration/migration.c, migration/ram.c), so the final GET sees every
    write the guest made.

    Why it loses a write: a write between the early GET of its slot and the stop sets only L1 (or
    faults a protected page into L1), which nothing fetches again. Expected violated property:
    ``no-loss`` at completion (``coverage`` already at the stop when the page's only mark is L1
    while coverage is owed).
    """

    name = "heldout2-log-sync-before-vm-stop"
    summary = "the last-stage KVM log sync runs before vm_stop; only L2 -> bmap after it"
    breaks = "no-loss"
    # declared design state: the last-stage sync runs without its KVM part (set by the completion)
    skip_log_sync: bool = False

    def memory_global_dirty_log_sync(self, w):
        """QEMU's log sync, unless the completion already did it before stopping the VM."""
        if self.skip_log_sync:
            return
        yield from super().memory_global_dirty_log_sync(w)

    def migration_completion(self, w):
        """BQL, log sync of every slot, stop the VM, ``ram_save_complete`` without its log sync."""
        mig = w.mig
        yield from w.acquire("BQL")
        mig.phase = "completing"
        yield from self.memory_global_dirty_log_sync(w)
        w.vm_running = False
        yield S(VM_STOP)
        self.skip_log_sync = True
        yield from self.ram_save_complete(w)
        self.skip_log_sync = False
        mig.phase = "completed"
        w.release("BQL")
        yield S(STREAM_COMPLETE)
        yield from self.migration_iteration_finish(w)
