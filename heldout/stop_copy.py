"""HELD OUT. Stop-and-copy ordering: what happens between vm_stop, the last sync and the last
sends. Never tune a search on these designs; they exist to measure."""
from __future__ import annotations

from dirtyproof.impl.designs import IterateSync, Legacy
from dirtyproof.impl.designs.base import Step


class LegacySyncBeforeVmStop(Legacy):
    """The last-stage sync runs before ``vm_stop``.

    Scenario: the migration thread takes the BQL and runs the last-stage sync while the vCPUs still
    run; a vCPU writes page P after the sync's GET of P's slot (the write faults into L1). Then the
    VM is stopped and ``bmap`` is drained: P is not in it, and cleanup stops dirty logging. The
    destination holds P's old version.

    Modelled from ``migration/migration.c`` ``migration_completion_precopy`` (``migration_stop_vm``
    first, then ``qemu_savevm_state_complete_precopy``) and ``migration/ram.c``
    ``ram_save_complete`` (the last-stage ``migration_bitmap_sync_precopy(rs, true)`` with the VM
    stopped): the variant syncs first to shorten the downtime.
    """

    name = "heldout-legacy-sync-before-vm-stop"
    summary = "held out: the last-stage sync runs before vm_stop; writes in between are never sent"
    breaks = "no-loss"

    def migration_completion(self, w) -> Step:
        mig = w.mig
        yield from w.acquire("BQL")
        mig.phase = "completing"
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        w.vm_running = False
        yield "vm_stop: vCPUs and devices stopped (after the last sync)"
        yield from w.acquire("bitmap_mutex")
        while (yield from self.ram_find_and_save_block(w)):
            pass
        w.release("bitmap_mutex")
        yield "ram_save_complete: bmap empty, bitmap_mutex released"
        mig.phase = "completed"
        w.release("BQL")
        yield "stream complete, BQL released"
        yield from self.migration_iteration_finish(w)


class IterateSyncSkipsFreshLastSync(IterateSync):
    """``ram_save_complete`` skips the last-stage sync when the previous sync is younger than the
    iterate-sync period ("the bitmap is fresh").

    Scenario: the exact-pending sync runs and finds little pending; the migration thread drops
    the BQL, and a vCPU writes page P before ``migration_completion`` stops the VM. Completion
    sees a sync younger than ``iterate_sync_ms`` and drains ``bmap`` without syncing: P's write,
    in L1 only, is never sent.

    Modelled from ``migration/ram.c`` ``ram_save_complete`` (always ``migration_bitmap_sync_precopy(rs,
    true)`` outside postcopy) and ``ram_state_pending_exact`` (the sync taken just before the switchover
    decision in ``migration_iteration_run``), with the reviewer's iterate-sync design of the seed thread.
    """

    name = "heldout-iterate-sync-skips-fresh-last-sync"
    summary = "held out: completion skips the last-stage sync when a sync ran within iterate_sync_ms"
    breaks = "no-loss"

    def ram_save_complete(self, w) -> Step:
        mig = w.mig
        if not (mig.dirty_sync_count > 1 and w.clock_ms - mig.last_sync_end_ms < w.config.iterate_sync_ms):
            yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        yield from w.acquire("bitmap_mutex")
        while (yield from self.ram_find_and_save_block(w)):
            pass
        w.release("bitmap_mutex")
        yield "ram_save_complete: bmap empty, bitmap_mutex released"


class LegacyCompleteRateLimited(Legacy):
    """The final stage sends under the iteration's rate limit (one ``burst``) instead of until
    ``bmap`` is empty.

    Scenario: the downtime limit is raised with more than ``burst`` pages pending; completion
    stops the VM, runs the last-stage sync and sends one burst, then ends the stream: the rest
    of ``bmap`` never reaches the destination.

    Modelled from ``migration/ram.c`` ``ram_save_complete`` ("flush all remaining blocks regardless
    of rate limiting": the loop runs until ``ram_find_and_save_block`` returns 0); the variant
    reuses ``ram_save_iterate``'s rate-limited loop.
    """

    name = "heldout-legacy-complete-rate-limited"
    summary = "held out: ram_save_complete sends one rate-limited burst and ends the stream"
    breaks = "no-loss"

    def ram_save_complete(self, w) -> Step:
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        yield from w.acquire("bitmap_mutex")
        sent = yield from self.ram_save_burst(w)
        w.release("bitmap_mutex")
        yield f"ram_save_complete: {sent} page(s) under the rate limit, stream ended"
