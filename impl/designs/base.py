"""The design interface, and QEMU's pre-copy bookkeeping as it was before the background-sync series.

Every overridable step carries the name of the QEMU function it models, so the model can be read
beside ``migration/ram.c``, ``include/exec/ram_addr.h`` and ``accel/kvm/kvm-all.c``. Methods that
are generators take atomic steps: each ``yield`` ends one. A design that changes one step
subclasses a design and overrides that method.
"""
from __future__ import annotations

from typing import Generator

from .. import regions
from ..bitmap import WORD_MASK
from ..steps import (BMAP_TAKE, CANCELLED, CHUNK_TAKEN, CLEANUP, CLEAR_BMAP_SET, COMPLETE_DRAINED, DELIVER,
                     FREE_PAGE_HINT, INIT_BITMAPS, ITERATE_DONE, ITERATION_FINISH, KVM_CLEAR, KVM_GET, KVM_OR,
                     L2_TEST_AND_CLEAR, L2_XCHG, MULTIFD_QUEUE, MULTIFD_SYNC, READ, REAPER_DONE, RING_KICK,
                     RING_PUBLISH, RING_REAP, RING_RESET, SAVEVM_CLEANUP, SETUP_DONE, STREAM_COMPLETE, SYNC_DONE,
                     THREADS_STARTED, VM_STOP, COMPLETION_END)
from ..steps import Step as S

Step = Generator[S, None, None]

# The methods the world and the checks call: a user's class must provide all of them.
INTERFACE = (
    "attach", "migration_thread", "ram_save_setup", "ram_init_bitmaps", "ram_list_init_bitmaps",
    "migration_bitmap_sync_precopy", "migration_bitmap_sync", "memory_global_dirty_log_sync",
    "kvm_physical_sync_dirty_bitmap", "cpu_physical_memory_sync_dirty_bitmap", "ramblock_sync_dirty_bitmap",
    "migration_iteration_run", "ram_state_pending_exact", "ram_save_iterate", "ram_save_burst",
    "ram_find_and_save_block", "find_dirty_page", "migration_bitmap_clear_dirty",
    "migration_clear_memory_region_dirty_bitmap", "memory_region_clear_dirty_bitmap", "kvm_log_clear_one_slot",
    "ram_save_page", "migration_completion", "migration_iteration_finish", "ram_save_complete", "migration_cancel",
    "migration_trigger_throttle", "mig_throttle_guest_down", "new_period", "before_setup", "start_threads",
    "stop_threads", "qemu_savevm_wait_unplug", "migrate_fd_cleanup", "qemu_savevm_state_cleanup",
    "ram_save_cleanup", "join_threads",
)
# Called only in dirty ring worlds (Config.kvm_mode "dirty_ring"); the base provides them.
DIRTY_RING_INTERFACE = ("kvm_log_sync_global", "kvm_dirty_ring_flush", "kvm_dirty_ring_reap",
                        "kvm_dirty_ring_reap_one", "kvm_dirty_ring_reaper_thread")
# Called only in multifd worlds (Config.multifd_channels > 0); the base provides them.
MULTIFD_INTERFACE = ("ram_save_multifd_page", "multifd_send_sync_main")


class Design:
    """QEMU before the series ("legacy"): syncs at setup, at the exact-pending check, at completion.

    Class attributes describe the design to the checks:
    ``coverage_bitmaps`` names per-block design bitmaps whose bits count as "marked" for per-step
    coverage; ``not_applicable`` lists invariant ids that do not hold by construction of the design.
    """

    name = "legacy"
    summary = "QEMU before 9.2: syncs only at setup, the exact-pending check and completion"
    coverage_bitmaps: tuple[str, ...] = ()
    not_applicable: tuple[str, ...] = ()
    # extra step methods (beyond the interface's) whose extent is a region (impl/regions.py)
    regions: tuple[str, ...] = ()
    # declared design state: True while the design runs a background sync (the seed series)
    background: bool = False

    def attach(self, w) -> None:
        """Bind to a world (one design instance per world); designs keep their globals here."""
        self.w = w

    # ------------------------------------------------------------------------------------------
    # the migration thread
    def migration_thread(self, w) -> Step:
        """The migration thread: setup, iterations until switchover or cancel, then completion.

        As ``migration_thread`` (migration/migration.c): ``before_setup`` (the dirty-sync timer is
        armed there), ``qemu_savevm_state_setup`` under the BQL, then the helper threads are
        started while the state is still SETUP, and only ``qemu_savevm_wait_unplug`` moves it to
        ACTIVE (through WAIT_UNPLUG when a failover device's unplug is pending). A thread started
        there can run before the state is ACTIVE: that is a step boundary of its own."""
        mig = w.mig
        self.before_setup(w)
        yield from w.acquire("BQL")
        yield from self.ram_save_setup(w)
        w.release("BQL")
        live = {n for n, a in w.actors.items() if not a.done}
        self.start_threads(w)
        if any(not a.done and n not in live for n, a in w.actors.items()):
            yield S(THREADS_STARTED)
        yield from self.qemu_savevm_wait_unplug(w)
        mig.phase = "active"
        yield S(SETUP_DONE)
        while True:
            if mig.cancel_requested:
                yield from self.migration_cancel(w)
                return
            done = yield from self.migration_iteration_run(w)
            if done:
                break
        yield from self.migration_completion(w)

    def before_setup(self, w) -> None:
        """What the migration thread starts before ``qemu_savevm_state_setup`` (none here)."""

    def start_threads(self, w) -> None:
        """Start the design's helper threads after ``qemu_savevm_state_setup``, the state still
        SETUP (none here)."""

    def stop_threads(self, w) -> None:
        """Stop them at completion or cancel (``migration_iteration_finish``); BQL held."""

    def join_threads(self, w) -> Step:
        """Join what ``migrate_fd_cleanup`` joins after dropping the BQL, besides the migration
        thread (none here)."""
        return
        yield

    def qemu_savevm_wait_unplug(self, w) -> Step:
        """``qemu_savevm_wait_unplug``: with a failover device whose unplug is pending
        (``Config.failover_unplug_ms``), the state is WAIT_UNPLUG until it is done; else SETUP
        goes straight to ACTIVE (the caller sets it)."""
        wait = w.config.failover_unplug_ms
        if wait and not w.mig.cancel_requested:
            w.mig.phase = "wait_unplug"
            yield from w.sleep_until(w.clock_ms + wait)

    def ram_save_setup(self, w) -> Step:
        """``ram_save_setup``: ``ram_state_init`` then ``ram_init_bitmaps``."""
        mig = w.mig
        mig.migration_dirty_pages = w.geometry.total_pages
        mig.time_last_bitmap_sync = w.clock_ms
        yield from self.ram_init_bitmaps(w)

    def ram_init_bitmaps(self, w) -> Step:
        """``ram_init_bitmaps``: bitmaps (``bmap`` all ones), dirty logging on, a first sync."""
        self.ram_list_init_bitmaps(w)
        w.kvm.log_start()
        yield S(INIT_BITMAPS)
        yield from self.migration_bitmap_sync_precopy(w, last_stage=False)

    def ram_list_init_bitmaps(self, w) -> None:
        """``ram_list_init_bitmaps``: every page must be sent; no remote clear is owed yet."""
        for rb in w.blocks:
            rb.bmap.fill(True)
            rb.clear_bmap.fill(False)

    # ------------------------------------------------------------------------------------------
    # syncs
    def migration_bitmap_sync_precopy(self, w, last_stage: bool = False) -> Step:
        """``migration_bitmap_sync_precopy``: the precopy notifiers (BEFORE_BITMAP_SYNC), a sync,
        the notifiers again (AFTER_BITMAP_SYNC). The notifiers are steps only in worlds whose
        guest hints free pages (``impl/balloon.py``): free-page hinting stops before the sync and
        a new hint cycle starts after it."""
        yield from w.precopy_notify("BEFORE_BITMAP_SYNC")
        yield from self.migration_bitmap_sync(w, last_stage)
        yield from w.precopy_notify("AFTER_BITMAP_SYNC")

    def migration_bitmap_sync(self, w, last_stage: bool = False) -> Step:
        """``migration_bitmap_sync``: log sync, then every block under ``bitmap_mutex``, then the
        throttle check when the period is over 1 s. Caller holds the BQL."""
        mig = w.mig
        mig.dirty_sync_count += 1
        yield from self.memory_global_dirty_log_sync(w)
        yield from w.acquire("bitmap_mutex")
        for rb in w.blocks:
            yield from self.ramblock_sync_dirty_bitmap(w, rb)
        w.release("bitmap_mutex")
        self.after_sync(w)
        yield S(SYNC_DONE)

    def after_sync(self, w) -> None:
        """The tail of ``migration_bitmap_sync`` (same step as the mutex release): throttle, period."""
        mig = w.mig
        mig.syncs += 1
        w.total_syncs += 1
        end = w.clock_ms
        mig.last_sync_end_ms = end
        if end > mig.time_last_bitmap_sync + 1000:
            self.migration_trigger_throttle(w)
            self.new_period(w, end)

    def new_period(self, w, now: int) -> None:
        """Start a new dirty-rate period (``time_last_bitmap_sync``, ``num_dirty_pages_period``...)."""
        mig = w.mig
        mig.time_last_bitmap_sync = now
        mig.num_dirty_pages_period = 0
        mig.bytes_xfer_prev = mig.bytes_transferred

    def memory_global_dirty_log_sync(self, w, last_stage: bool | None = None) -> Step:
        """L1 -> L2 for every memslot, one slot after the other; with the dirty ring, KVM's
        ``log_sync_global`` instead (``memory_global_dirty_log_sync`` calls it for the ring). QEMU
        passes ``last_stage`` down from ``migration_bitmap_sync``; left out, it is read from the
        sync the thread is in (its ``last_stage`` argument)."""
        if w.kvm.ring_mode:
            if last_stage is None:
                r = regions.innermost(w.current, "migration_bitmap_sync")
                last_stage = bool(r.arg("last_stage", 0, False)) if r is not None else False
            yield from self.kvm_log_sync_global(w, last_stage)
            return
        for s in w.slots:
            yield from self.kvm_physical_sync_dirty_bitmap(w, s)

    # ------------------------------------------------------------------------------------------
    # the dirty ring (accel/kvm/kvm-all.c: QEMU 6.1's "KVM: Dirty ring support" series, Peter Xu;
    # 8.0's 1e493be58708 "migration: Add last stage indicator to global dirty log" and b20cc776922d
    # "kvm: Synchronize the backup bitmap in the last stage"; Linux api.rst KVM_CAP_DIRTY_LOG_RING)
    def kvm_log_sync_global(self, w, last_stage: bool) -> Step:
        """``kvm_log_sync_global``: flush the rings into the slot bitmaps (kick, reap), then under
        ``slots_lock`` publish every slot's bitmap into L2 and zero it, one step per slot; at the
        last stage with the backup bitmap, the slot's KVM_GET_DIRTY_LOG of the backup bitmap is
        published in the same step. No KVM_CLEAR_DIRTY_LOG in this mode."""
        yield from self.kvm_dirty_ring_flush(w)
        yield from w.acquire("slots_lock")
        for i, s in enumerate(w.slots):
            w.kvm_slot_sync_dirty_pages(s)
            backup = w.kvm.with_bitmap and last_stage
            if backup:
                w.kvm.get_dirty_log(s)
                w.kvm_slot_sync_dirty_pages(s)
            w.kvm_slot_reset_dirty_pages(s)
            if i == len(w.slots) - 1:
                w.release("slots_lock")
            yield S(RING_PUBLISH, slot=s.index, value=backup)

    def kvm_dirty_ring_flush(self, w) -> Step:
        """``kvm_dirty_ring_flush`` (BQL held): kick every vCPU out synchronously, so that their
        hardware buffers reach the rings, then reap every ring."""
        w.kvm_cpu_synchronize_kick_all()
        yield S(RING_KICK)
        yield from self.kvm_dirty_ring_reap(w)

    def kvm_dirty_ring_reap(self, w) -> Step:
        """``kvm_dirty_ring_reap`` (BQL held by the caller): under ``slots_lock``, every vCPU's ring
        harvested (one step each), then KVM_RESET_DIRTY_RINGS if anything was collected, in the
        step that releases ``slots_lock``."""
        yield from w.acquire("slots_lock")
        total = 0
        for cpu in range(len(w.kvm.rings)):
            total += yield from self.kvm_dirty_ring_reap_one(w, cpu)
        if total:
            w.kvm_reset_dirty_rings()
        w.release("slots_lock")
        yield S(RING_RESET, value=total)

    def kvm_dirty_ring_reap_one(self, w, cpu: int) -> Step:
        """``kvm_dirty_ring_reap_one``: each dirty entry of vCPU ``cpu``'s ring is marked in its
        slot's bitmap (``kvm_dirty_ring_mark_page``) and flagged collected (one step; none for
        an empty ring). Returns how many."""
        pages = w.kvm_dirty_ring_harvest(cpu)
        for p in pages:
            w.kvm_dirty_ring_mark_page(p)
        if pages:
            yield S(RING_REAP, value=(cpu, tuple(pages)))
        return len(pages)

    def kvm_dirty_ring_reaper_thread(self, w) -> Step:
        """``kvm_dirty_ring_reaper_thread``: every second, take the BQL and reap every ring. A
        vCPU whose ring is full wakes it at once (in QEMU that vCPU reaps itself, BQL held, the
        same reap)."""
        while True:
            yield from w.sleep_until(w.clock_ms + 1000)
            yield from w.acquire("BQL")
            yield from self.kvm_dirty_ring_reap(w)
            w.release("BQL")
            yield S(REAPER_DONE)

    def kvm_physical_sync_dirty_bitmap(self, w, slot) -> Step:
        """One memslot: the GET ioctl (one step), then the OR of L1c into L2 (one step), under
        ``slots_lock`` (``kvm_slot_get_dirty_log`` and ``kvm_slot_sync_dirty_pages``)."""
        yield from w.acquire("slots_lock")
        w.kvm.get_dirty_log(slot)
        yield S(KVM_GET, slot=slot.index)
        w.kvm_slot_sync_dirty_pages(slot)
        w.release("slots_lock")
        yield S(KVM_OR, slot=slot.index)

    def ramblock_sync_dirty_bitmap(self, w, rb) -> Step:
        """``ramblock_sync_dirty_bitmap``: L2 -> ``bmap`` for one block, then count the new pages."""
        n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        w.mig.migration_dirty_pages += n
        w.mig.num_dirty_pages_period += n

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """L2 -> ``bmap`` of one block; returns the number of bits newly set in ``bmap``.

        Fast path (64-aligned block): one ``atomic_xchg`` of an L2 word per step, then every
        ``clear_bmap`` bit set (the remote clear is owed). Slow path: per page, an L2
        test-and-clear, then the remote clear of that page and the ``bmap`` test-and-set."""
        num_dirty = 0
        if rb.fast_path:
            base = rb.offset // rb.word_bits
            for k in range(rb.words()):
                if w.L2.word(base + k, rb.word_bits):
                    bits = w.L2.xchg_word(base + k, 0, rb.word_bits)
                    old = rb.bmap.word(k)
                    num_dirty += (bits & ~old & WORD_MASK).bit_count()
                    rb.bmap.set_word(k, old | bits)
                    yield S(L2_XCHG, block=rb.index, word=base + k)
            rb.clear_bmap.fill(True)
            yield S(CLEAR_BMAP_SET, block=rb.index)
        else:
            for k in range(rb.pages):
                dirty = yield from self.sync_one_page(w, rb, k)
                if dirty and not rb.bmap.test_and_set(k):
                    num_dirty += 1
        return num_dirty

    def sync_one_page(self, w, rb, k: int) -> Step:
        """Slow path for one page: L2 test-and-clear (one step), then the remote clear of the page.

        Returns whether the L2 bit was set; between the two steps the bit lives only in the
        sync's local variable (the world counts it as in the sync's hands). Skips the two steps when both would be no-ops
        (L2 bit clear and nothing fetched to clear: L1c cannot change while the sync holds the BQL)."""
        page = rb.offset + k
        if not w.L2.test(page) and not (w.kvm.manual_protect and w.kvm.L1c.test(page)):
            return False
        dirty = w.L2.test_and_clear(page)
        yield S(L2_TEST_AND_CLEAR, block=rb.index, page=page, value=dirty)
        yield from self.memory_region_clear_dirty_bitmap(w, page, page + 1)
        return dirty

    def memory_region_clear_dirty_bitmap(self, w, start: int, end: int) -> Step:
        """The remote clear of ram_addr pages [start, end): one CLEAR ioctl per memslot, each a
        step under ``slots_lock``. No ioctl in legacy mode (QEMU returns early)."""
        if not w.kvm.manual_protect:
            return
        for s in w.slots:
            if s.start < end and start < s.end:
                yield from self.kvm_log_clear_one_slot(w, s, max(start, s.start), min(end, s.end))

    def kvm_log_clear_one_slot(self, w, slot, start: int, end: int) -> Step:
        """One KVM_CLEAR_DIRTY_LOG of ram_addr pages [start, end) of ``slot`` (one step under
        ``slots_lock``); the mask is QEMU's slot copy L1c over the range."""
        yield from w.acquire("slots_lock")
        w.remote_clear(start, end)
        w.release("slots_lock")
        yield S(KVM_CLEAR, slot=slot.index, start=start, end=end)

    # ------------------------------------------------------------------------------------------
    # iterations
    def migration_iteration_run(self, w) -> Step:
        """``migration_iteration_run``: exact sync when little is pending; switch over if still
        little is pending; otherwise send a burst. Returns True to complete."""
        if self.below_threshold(w):
            yield from w.acquire("BQL")
            yield from self.ram_state_pending_exact(w)
            w.release("BQL")
            if self.below_threshold(w):
                return True
        yield from self.ram_save_iterate(w)
        return False

    def below_threshold(self, w) -> bool:
        """Whether the pending pages fit in the downtime (``pending_size < threshold_size``)."""
        mig = w.mig
        return mig.downtime_raised or mig.migration_dirty_pages <= w.config.switchover_pages

    def ram_state_pending_exact(self, w) -> Step:
        """``ram_state_pending_exact``: an exact sync, BQL held by the caller."""
        yield from self.migration_bitmap_sync_precopy(w, last_stage=False)

    def ram_save_iterate(self, w) -> Step:
        """``ram_save_iterate``: send up to ``burst`` pages under ``bitmap_mutex``."""
        yield from w.acquire("bitmap_mutex")
        sent = yield from self.ram_save_burst(w)
        w.release("bitmap_mutex")
        yield S(ITERATE_DONE, value=sent)

    def ram_save_burst(self, w) -> Step:
        """The send loop of ``ram_save_iterate`` (``bitmap_mutex`` held): up to ``burst`` pages,
        fewer after a clean round; returns the pages sent."""
        sent = 0
        while sent < w.config.burst:
            n = yield from self.ram_find_and_save_block(w)
            if n == 0:
                break
            sent += n
        return sent

    def find_dirty_page(self, w):
        """``find_dirty_block``: next set bit of ``bmap`` from the search position, wrapping over
        the blocks once; ``None`` after a complete clean round."""
        mig = w.mig
        nblocks = len(w.blocks)
        bi, page = mig.pss_block, mig.pss_page
        for _ in range(nblocks + 1):
            rb = w.blocks[bi]
            found = rb.bmap.find_next(page, rb.pages)
            if found < rb.pages:
                mig.pss_block, mig.pss_page = bi, found
                return rb, found
            bi, page = (bi + 1) % nblocks, 0
        return None

    def ram_find_and_save_block(self, w) -> Step:
        """``ram_find_and_save_block``: find a dirty page and send it; returns pages sent (0: clean).

        With multifd, a search that wrapped (it came back to or before where it started, or found
        nothing) completed a round: ``find_dirty_block`` flushes the channels before the next
        round's first page (``RAM_SAVE_FLAG_MULTIFD_FLUSH``). The model's search restarts at the
        last page sent, QEMU's after it, so finding that same page again is a wrap too."""
        mig = w.mig
        before = (mig.pss_block, mig.pss_page)
        found = self.find_dirty_page(w)
        if w.multifd is not None and (found is None or (mig.pss_block, mig.pss_page) <= before):
            yield from self.multifd_send_sync_main(w, "round")
        if found is None:
            return 0
        rb, page = found
        if (yield from self.migration_bitmap_clear_dirty(w, rb, page)):
            yield from self.ram_save_page(w, rb, page)
            return 1
        return 0

    def migration_bitmap_clear_dirty(self, w, rb, page: int) -> Step:
        """``migration_bitmap_clear_dirty``: the owed chunk clear first, then ``bmap``
        test-and-clear and the ``migration_dirty_pages`` decrement (one step)."""
        yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        return ret

    def migration_clear_memory_region_dirty_bitmap(self, w, rb, page: int) -> Step:
        """The owed remote clear of ``page``'s chunk: take the ``clear_bmap`` bit (one step), then
        CLEAR the whole chunk. Must come before any page of the chunk is read."""
        chunk = rb.chunk_of(page)
        if rb.clear_bmap.test_and_clear(chunk):
            yield S(CHUNK_TAKEN, block=rb.index, chunk=chunk)
            start, end = rb.chunk_range(chunk)
            yield from self.memory_region_clear_dirty_bitmap(w, rb.offset + start, rb.offset + end)

    def ram_save_page(self, w, rb, page: int) -> Step:
        """Read the page's content (one step), then put it on the wire to the destination (one
        step); with multifd, ``ram_save_multifd_page`` instead (a channel reads it later)."""
        if w.multifd is not None:
            yield from self.ram_save_multifd_page(w, rb, page)
            return
        addr = rb.offset + page
        version = w.read_page(addr)
        yield S(READ, block=rb.index, page=addr, value=version)
        w.deliver(addr, version)
        yield S(DELIVER, block=rb.index, page=addr, value=version)

    def ram_save_multifd_page(self, w, rb, page: int) -> Step:
        """``ram_save_multifd_page``: queue the page for a multifd channel without reading it
        (``multifd_queue_page``; a full batch goes to an idle channel, waiting for one)."""
        from ..multifd import multifd_queue_page
        addr = rb.offset + page
        yield from multifd_queue_page(w, addr)
        yield S(MULTIFD_QUEUE, block=rb.index, page=addr)

    def multifd_send_sync_main(self, w, why: str) -> Step:
        """``multifd_send_sync_main`` and ``RAM_SAVE_FLAG_MULTIFD_FLUSH``: hand out the partial
        batch, wait until every channel delivered (the destination's ``multifd_recv_sync_main``
        barrier). ``why``: ``round`` (a search wrapped) or ``complete`` (``ram_save_complete``)."""
        from ..multifd import multifd_flush
        yield from multifd_flush(w)
        yield S(MULTIFD_SYNC, value=why)

    # ------------------------------------------------------------------------------------------
    # free-page hinting (called by the balloon's iothread, impl/balloon.py)
    def qemu_guest_free_page_hint(self, w, start: int, npages: int) -> Step:
        """``qemu_guest_free_page_hint`` (migration/ram.c): only while a migration is set up or
        active; under ``bitmap_mutex``, the owed remote clears of the range's chunks (a skipped
        free page counts as sent for ``clear_bmap``), then ``migration_dirty_pages`` loses the
        range's set ``bmap`` bits and they are cleared (one step, the mutex released with it).
        The caller (the iothread) holds the balloon's ``free_page_lock``."""
        mig = w.mig
        if mig is None or mig.phase not in ("setup", "active") or mig.cancel_requested:
            return
        rb = w.block_of(start)
        first = start - rb.offset
        last = min(first + npages, rb.pages)
        yield from w.acquire("bitmap_mutex")
        yield from self.migration_clear_memory_region_dirty_bitmap_range(w, rb, first, last - first)
        cleared = 0
        for k in range(first, last):
            if rb.bmap.test_and_clear(k):
                cleared += 1
        mig.migration_dirty_pages -= cleared
        w.release("bitmap_mutex")
        yield S(FREE_PAGE_HINT, block=rb.index, start=start, end=rb.offset + last, value=cleared)

    def migration_clear_memory_region_dirty_bitmap_range(self, w, rb, start: int, npages: int) -> Step:
        """The owed remote clear of every ``clear_bmap`` chunk that block-relative pages
        [start, start+npages) touch, chunk by chunk."""
        page = start
        while page < start + npages:
            yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
            page = rb.chunk_range(rb.chunk_of(page))[1]

    # ------------------------------------------------------------------------------------------
    # the end
    def migration_completion(self, w) -> Step:
        """``migration_completion``: BQL, stop the VM, ``ram_save_complete``; the BQL dropped;
        ``migration_completion_end`` under the BQL again; then, as a separate BQL section,
        ``migration_iteration_finish`` and the cleanup (threads, throttle, dirty log).

        Between the two sections the main loop may still run a timer callback, as in QEMU.

        A cancel requested before the end wins: QEMU's ``migrate_fd_cancel`` moves the state to
        CANCELLING and shuts the stream down, so ``migration_completion_end`` never sets
        COMPLETED; the VM is restarted and the attempt is cleaned up as cancelled."""
        mig = w.mig
        yield from w.acquire("BQL")
        mig.phase = "completing"
        w.vm_stop()
        yield S(VM_STOP)
        yield from self.ram_save_complete(w)
        w.release("BQL")
        yield S(STREAM_COMPLETE)
        yield from self.migration_completion_end(w)
        yield from self.migration_iteration_finish(w)

    def migration_completion_end(self, w) -> Step:
        """``migration_completion_end`` (migration/migration.c): after ``migration_completion_precopy``
        dropped the BQL (a QMP ``migrate_cancel`` can land in between: it moves the state to
        CANCELLING and shuts the stream down), the BQL again, and the state moves to COMPLETED
        only if it is still the active one. One step."""
        mig = w.mig
        yield from w.acquire("BQL")
        if not mig.cancel_requested:
            mig.phase = "completed"
        w.release("BQL")
        yield S(COMPLETION_END, value=mig.phase == "completed")

    def migration_iteration_finish(self, w) -> Step:
        """``migration_iteration_finish`` (migration thread, BQL held): ``cpu_throttle_stop``
        (the throttle and the dirty-sync timer), the VM restarted if the migration was cancelled
        after it stopped it; then the cleanup bottom half, ``migrate_fd_cleanup``."""
        mig = w.mig
        yield from w.acquire("BQL")
        self.stop_threads(w)
        w.throttle_pct = 0
        if mig.cancel_requested and mig.phase != "completed" and not w.vm_running:
            w.vm_start()
        w.release("BQL")
        yield S(ITERATION_FINISH)
        yield from self.migrate_fd_cleanup(w)

    def migrate_fd_cleanup(self, w) -> Step:
        """``migrate_fd_cleanup`` (the main loop's bottom half; modelled in the migration actor,
        which does nothing else after scheduling it): ``qemu_savevm_state_cleanup`` under the
        BQL (the precopy CLEANUP notifiers, whose steps are their own, then one step), then the BQL dropped to join the threads (QEMU joins the migration
        thread: the end of this actor), and a cancelled migration's state set to CANCELLED."""
        mig = w.mig
        yield from w.acquire("BQL")
        # qemu_savevm_state_cleanup's first call; the notifiers' own steps run with the BQL held
        yield from w.precopy_notify("CLEANUP")
        self.qemu_savevm_state_cleanup(w)
        w.release("BQL")
        yield S(SAVEVM_CLEANUP)
        yield from self.join_threads(w)
        if w.multifd is not None:
            from ..multifd import multifd_send_shutdown
            yield from multifd_send_shutdown(w)
        if mig.cancel_requested and mig.phase != "completed":
            mig.phase = "cancelled"
            yield S(CANCELLED)
        else:
            yield S(CLEANUP)

    def qemu_savevm_state_cleanup(self, w) -> None:
        """``qemu_savevm_state_cleanup``: each handler's ``save_cleanup``; RAM's is ``ram_save_cleanup``."""
        self.ram_save_cleanup(w)

    def ram_save_cleanup(self, w) -> None:
        """``ram_save_cleanup``: stop dirty logging (postponed while the VM is stopped), free every
        block's ``bmap`` and ``clear_bmap``, then the RAMState (``ram_state = NULL``)."""
        w.memory_global_dirty_log_stop()
        w.ram_save_cleanup_free()

    def ram_save_complete(self, w) -> Step:
        """``ram_save_complete``: last-stage sync, then send under ``bitmap_mutex`` until clean."""
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        yield from w.acquire("bitmap_mutex")
        while (yield from self.ram_find_and_save_block(w)):
            pass
        w.release("bitmap_mutex")
        yield S(COMPLETE_DRAINED)
        if w.multifd is not None:
            yield from self.multifd_send_sync_main(w, "complete")

    def migration_cancel(self, w) -> Step:
        """Cancel: the migration thread leaves its loop; ``migration_iteration_finish`` then the
        cleanup, as for a completed migration (the state becomes CANCELLED at its end)."""
        yield from self.migration_iteration_finish(w)

    # ------------------------------------------------------------------------------------------
    # auto-converge
    def migration_trigger_throttle(self, w) -> None:
        """``migration_trigger_throttle``: two high-dirty-rate periods (not necessarily in a row)
        start or raise the CPU throttle."""
        mig, cfg = w.mig, w.config
        xfer = mig.bytes_transferred - mig.bytes_xfer_prev
        dirty = mig.num_dirty_pages_period * w.bytes_per_page()
        threshold = xfer * cfg.throttle_trigger_threshold // 100
        if dirty > threshold:
            mig.dirty_rate_high_cnt += 1
            if mig.dirty_rate_high_cnt >= 2:
                mig.dirty_rate_high_cnt = 0
                if cfg.auto_converge:
                    self.mig_throttle_guest_down(w, dirty, threshold)

    def mig_throttle_guest_down(self, w, dirty: int, threshold: int) -> None:
        """``mig_throttle_guest_down``: initial percentage, then increments (or tailslow), capped."""
        cfg = w.config
        if w.throttle_pct == 0:
            pct = cfg.cpu_throttle_initial        # QEMU does not cap the first step by the max
            w.throttle_pct = max(1, min(pct, 99))
            return
        else:
            inc = cfg.cpu_throttle_increment
            if cfg.cpu_throttle_tailslow and dirty > 0:
                # the guest's CPU share that would bring the dirty rate down to the threshold,
                # truncated to an integer as QEMU's uint64_t does; never more than the increment
                cpu_now = 100 - w.throttle_pct
                cpu_ideal = int(cpu_now * (threshold * 1.0 / dirty))
                inc = min(cpu_now - cpu_ideal, inc)
            pct = w.throttle_pct + inc
        w.throttle_pct = max(1, min(pct, cfg.max_cpu_throttle, 99))
