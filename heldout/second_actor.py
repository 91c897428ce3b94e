"""HELD OUT. A second syncing actor (the 9.2 dirty-sync timer) racing the sender or another sync
at one particular point. Never tune a search on these designs; they exist to measure."""
from __future__ import annotations

from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import Periodic
from dirtyproof.impl.designs.base import Step
from dirtyproof.impl.designs.periodic import CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS


class PeriodicSlotsLockSplit(Periodic):
    """The log sync drops ``slots_lock`` between KVM_GET_DIRTY_LOG and the OR of the slot copy into L2.

    Scenario (manual or initially-set KVM mode): the timer's sync (main loop, BQL) does the GET of a
    slot; L1c now holds page P, written once after its last CLEAR. It drops ``slots_lock``. The
    migration thread, sending under ``bitmap_mutex`` (no BQL), takes the owed ``clear_bmap`` bit of
    P's chunk and issues KVM_CLEAR_DIRTY_LOG with the mask taken from L1c: P's L1 bit is cleared and
    P re-protected, and L1c is cleared over the chunk. The timer then ORs the (now empty) L1c into
    L2: P's write is in no layer any more.

    Modelled from ``accel/kvm/kvm-all.c``: ``kvm_physical_sync_dirty_bitmap`` (GET into
    ``mem->dirty_bmap`` then ``kvm_slot_sync_dirty_pages``) and ``kvm_log_clear_one_slot`` (mask from
    ``mem->dirty_bmap``, then clears it), which since QEMU 4.1 run under one ``kvm_slots_lock``
    held across GET *and* OR. This is the layout before the slots lock, which Peter Xu's 2019
    KVM_CLEAR_DIRTY_LOG series added (subject "kvm: Introduce slots lock for memory listener"; its
    hash is not in the stored archive) with ``memory: Introduce memory listener hook log_clear()``
    (077874e01fd5) and ``kvm: Support KVM_CLEAR_DIRTY_LOG`` (40c4d4a83545), once a sync can run in
    one thread and a CLEAR in another (the 9.2 timer: 52ac968ab28b).
    """

    name = "heldout-periodic-slots-lock-split"
    summary = "held out: log sync drops slots_lock between GET and the OR into L2; sender's CLEAR lands between"
    breaks = "coverage"

    def memory_global_dirty_log_sync(self, w) -> Step:
        for s in w.slots:
            yield from w.acquire("slots_lock")
            w.kvm.get_dirty_log(s)
            w.release("slots_lock")
            yield f"KVM_GET_DIRTY_LOG slot {s.index}, slots_lock dropped"
            yield from w.acquire("slots_lock")
            w.kvm_slot_sync_dirty_pages(s)
            w.release("slots_lock")
            yield f"slot {s.index}: L1c OR-ed into L2"


class PeriodicClearBmapAfterUnlock(Periodic):
    """The fast path's ``clear_bmap_set`` is done after ``bitmap_mutex`` is dropped.

    Scenario (manual mode): the timer's sync moves page P (fetched into L1c; L1 still set, P not
    protected) into ``bmap`` and drops ``bitmap_mutex`` before marking the remote clear owed. The
    sender, whose chunk bit was taken earlier in the round, sends P at once: no CLEAR, read v2.
    The guest writes P again (v3): no fault, L1 is already set. The timer now sets ``clear_bmap``.
    The next send of any page of P's chunk takes the bit and CLEARs with the L1c mask, which still
    holds P: L1 is cleared and v3 is in no layer.

    Modelled from ``include/exec/ram_addr.h`` ``cpu_physical_memory_sync_dirty_bitmap``: the comment
    "postpone the dirty bitmap clear to the point before we really send the pages" and the
    ``clear_bmap_set`` after the word loop, which the caller ``migration_bitmap_sync`` runs under
    ``bitmap_mutex``. Here the set is moved after ``qemu_mutex_unlock(&rs->bitmap_mutex)``, as one
    might to shorten the critical section; the second actor is the 9.2 timer (52ac968ab28b).
    """

    name = "heldout-periodic-clear-bmap-after-unlock"
    summary = "held out: clear_bmap_set after bitmap_mutex is dropped; the sender reads a page in the gap"
    breaks = "clear-before-read"

    def attach(self, w) -> None:
        super().attach(w)
        self.clear_owed = []

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset >> 6
        for k in range(rb.words()):
            if w.L2.word(base + k):
                bits = w.L2.xchg_word(base + k, 0)
                old = rb.bmap.word(k)
                num_dirty += (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                yield f"{rb.idstr}: xchg L2 word {base + k} into bmap word {k}"
        self.clear_owed.append(rb)          # clear_bmap_set postponed past the unlock
        return num_dirty

    def migration_bitmap_sync(self, w, last_stage: bool = False) -> Step:
        mig = w.mig
        mig.dirty_sync_count += 1
        yield from self.memory_global_dirty_log_sync(w)
        yield from w.acquire("bitmap_mutex")
        self.clear_owed = []
        for rb in w.blocks:
            yield from self.ramblock_sync_dirty_bitmap(w, rb)
        w.release("bitmap_mutex")
        yield "bitmap_mutex released (clear_bmap not yet set)"
        for rb in self.clear_owed:
            rb.clear_bmap.fill(True)
        self.clear_owed = []
        self.after_sync(w)
        yield "clear_bmap set (remote clear owed), migration_bitmap_sync done"


class PeriodicTimerThreadNoBQL(Periodic):
    """The dirty-sync timer runs in its own thread without the BQL, and the rate-period update runs
    after ``bitmap_mutex`` is dropped (QEMU's order: unlock, ``memory_global_after_dirty_log_sync``,
    then the 1 s check), so two syncs overlap at the period reset.

    Scenario: the migration thread's exact sync has released ``bitmap_mutex`` and not yet run its
    period update. The timer thread takes the mutex and counts block 0 into
    ``num_dirty_pages_period``. The migration thread's period update (``num_dirty_pages_period = 0``)
    lands now; the timer counts block 1 and releases. The period counter has lost block 0's new
    pages: the throttle decides on too few. (Either thread can be the one reset under.)

    Modelled from ``migration/cpu-throttle.c`` ``cpu_throttle_dirty_sync_timer_tick`` (52ac968ab28b,
    a main-loop timer, so with the BQL) and ``migration/ram.c`` ``migration_bitmap_sync`` (the
    ``end_time > rs->time_last_bitmap_sync + 1000`` block after ``qemu_mutex_unlock``): the
    variant moves the tick into a dedicated thread that does not take the BQL, as a reviewer might
    to keep the main loop responsive.
    """

    name = "heldout-periodic-timer-thread-no-bql"
    summary = "held out: timer syncs from a thread without the BQL; a period reset lands inside the other sync"
    breaks = "period-counter"

    def timer_loop(self, w) -> Step:
        period = w.config.dirty_sync_timer_ms or CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS
        while self.timer_armed:
            yield from w.sleep_until(w.clock_ms + period)
            if not self.timer_armed:
                return
            yield from self.cpu_throttle_dirty_sync_timer_tick(w)
            yield "timer tick done (no BQL)"

    def quit_and_join_timer(self, w) -> Step:
        """A thread is told to quit and joined (not killed mid-sync), before the cleanup."""
        self.timer_armed = False
        w.wake("timer")         # its sleep ends now (s13: was ``t.wake_at_ms = 0``, the same write)
        yield from w.join("timer")

    def migration_cancel(self, w) -> Step:
        yield from self.quit_and_join_timer(w)
        yield from super().migration_cancel(w)

    def migration_completion(self, w) -> Step:
        yield from self.quit_and_join_timer(w)
        yield from super().migration_completion(w)

    def migration_bitmap_sync(self, w, last_stage: bool = False) -> Step:
        mig = w.mig
        mig.dirty_sync_count += 1
        yield from self.memory_global_dirty_log_sync(w)
        yield from w.acquire("bitmap_mutex")
        for rb in w.blocks:
            yield from self.ramblock_sync_dirty_bitmap(w, rb)
        w.release("bitmap_mutex")
        yield "bitmap_mutex released; memory_global_after_dirty_log_sync"
        self.after_sync(w)
        yield "migration_bitmap_sync: rate period checked"


class PeriodicDeferredSlowPathClear(Periodic):
    """The slow path's per-page remote clears are batched and issued after ``bitmap_mutex`` is dropped.

    Scenario (manual or initially-set KVM mode, an unaligned block): the timer's sync test-and-clears
    page P's L2 bit and sets P in ``bmap`` under ``bitmap_mutex``, remembering P for a remote clear,
    and drops the mutex. The sender sends P at once and reads v1; a vCPU writes P (v2): no fault,
    L1 is still set. The timer now issues the deferred KVM_CLEAR_DIRTY_LOG of P with the L1c mask,
    which holds P: L1 is cleared and v2 is in no layer. ``clear_bmap`` is never involved (the slow
    path clears eagerly), so the ``clear-before-read`` check does not see it.

    Modelled from ``system/physmem.c`` ``physical_memory_test_and_clear_dirty`` as current master
    has it (L2 test-and-clear and the ``bmap`` set for every page of the range, then one
    ``memory_region_clear_dirty_bitmap`` of the whole range at the end; ``docs/qemu-semantics.md``
    section 2) and ``migration/ram.c`` ``migration_bitmap_sync``, where all of it runs under
    ``bitmap_mutex``; the variant moves the final clear after the unlock to shorten the critical
    section. The second actor is the 9.2 timer (52ac968ab28b).
    """

    name = "heldout-periodic-deferred-slow-path-clear"
    summary = "held out: slow-path remote clears issued after bitmap_mutex is dropped; the sender reads in between"
    breaks = "coverage"

    def attach(self, w) -> None:
        super().attach(w)
        self.deferred = []

    def sync_one_page(self, w, rb, k: int) -> Step:
        page = rb.offset + k
        if not w.L2.test(page) and not (w.kvm.manual_protect and w.kvm.L1c.test(page)):
            return False
        dirty = w.L2.test_and_clear(page)
        self.deferred.append(page)             # remote clear postponed past the unlock
        yield f"{rb.idstr}: test-and-clear L2 page {page} ({'dirty' if dirty else 'clean'}), clear deferred"
        return dirty

    def migration_bitmap_sync(self, w, last_stage: bool = False) -> Step:
        mig = w.mig
        mig.dirty_sync_count += 1
        yield from self.memory_global_dirty_log_sync(w)
        yield from w.acquire("bitmap_mutex")
        self.deferred = []
        for rb in w.blocks:
            yield from self.ramblock_sync_dirty_bitmap(w, rb)
        w.release("bitmap_mutex")
        pages, self.deferred = self.deferred, []
        yield f"bitmap_mutex released; {len(pages)} remote clear(s) deferred"
        for page in pages:
            yield from self.memory_region_clear_dirty_bitmap(w, page, page + 1)
        self.after_sync(w)
        yield "migration_bitmap_sync done"
