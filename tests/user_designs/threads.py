"""User-style designs around the periodic sync timer (QEMU 9.2+): what it syncs on, where its
sync clears KVM's log, how long it holds ``slots_lock``, and how it is stopped."""
from __future__ import annotations

from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import Legacy, Periodic
from dirtyproof.impl.designs.base import Step

# ---------------------------------------------------------------------------------------------
# correct


class TimerAlsoSyncsWhenIdle(Periodic):
    """The dirty-sync timer also syncs when the last sync ended more than one timer period ago,
    even if ``dirty_sync_count`` moved since the previous tick.

    Modelled on ``cpu_throttle_dirty_sync_timer_tick`` (migration/cpu-throttle.c, merged in 9.2 by
    PULL 08/18 of 30 Oct 2024), which syncs only when ``dirty_sync_count`` equals
    ``throttle_dirty_sync_count_prev``; the extra condition is the v1 background-sync watcher's
    "nothing synced for 5 s" test (``migration_background_sync_watcher``) grafted onto the timer.

    Why it is safe: the extra sync is the ordinary ``migration_bitmap_sync_precopy`` under the
    BQL, like the timer's own; syncs only move bits towards ``bmap``."""

    name = "user-timer-also-syncs-when-idle"
    summary = "periodic timer also syncs when the last sync ended more than one period ago"
    expected = "safe"
    layer = "helper threads (timer)"

    def cpu_throttle_dirty_sync_timer_tick(self, w) -> Step:
        """Sync when the count is stuck (QEMU) or the last sync is older than the period (new)."""
        mig = w.mig
        period = w.config.dirty_sync_timer_ms or 5000
        cnt = mig.dirty_sync_count
        stuck = cnt > 1 and cnt == self.throttle_dirty_sync_count_prev
        idle = cnt >= 1 and w.clock_ms - mig.last_sync_end_ms >= period
        if stuck or idle:
            yield from self.migration_bitmap_sync_precopy(w, last_stage=False)
        self.throttle_dirty_sync_count_prev = mig.dirty_sync_count


# ---------------------------------------------------------------------------------------------
# broken


class EagerClearAfterUnlock(Periodic):
    """Fast-path blocks are remote-cleared eagerly by the sync (no ``clear_bmap``), but the clear
    is moved after ``bitmap_mutex`` is released, to shorten the mutex hold time.

    Modelled on the ``else`` branch of ``cpu_physical_memory_sync_dirty_bitmap``
    (include/exec/ram_addr.h: ``memory_region_clear_dirty_bitmap(rb->mr, start, length)`` right
    after the loop, inside the mutex section of ``migration_bitmap_sync``); the bug moves that
    call after ``qemu_mutex_unlock(&rs->bitmap_mutex)``, next to ``memory_global_after_dirty_log_sync``.
    Layer: KVM dirty log / CLEAR.

    Scenario (manual-protect KVM): the timer's sync fetches page P (L1c[P] set, L1[P] stays set,
    P writable) into ``bmap`` and drops the mutex; the migration thread's burst takes the mutex
    and reads P (no chunk clear owed: ``clear_bmap`` is never set); the guest writes P, which does
    not fault (L1[P] is already set); the timer's eager CLEAR, mask L1c, clears L1[P]. The write
    is now in no layer: ``no-loss`` fails at completion. No rule sees it (the CLEAR's mask was
    fetched, and no chunk clear was owed when P was read)."""

    name = "user-eager-clear-after-unlock"
    summary = "broken: the sync's eager remote clear of fast-path blocks runs after bitmap_mutex is dropped"
    expected = "unsafe"
    layer = "KVM dirty log / CLEAR (race with the timer)"
    breaks = "no-loss"

    def migration_bitmap_sync(self, w, last_stage: bool = False) -> Step:
        """The base sync, then (BQL still held, mutex released) the eager clears."""
        self._eager = []
        yield from super().migration_bitmap_sync(w, last_stage)
        for rb in self._eager:
            yield from self.memory_region_clear_dirty_bitmap(w, rb.offset, rb.offset + rb.pages)
        self._eager = []

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Fast path without ``clear_bmap``: the block is queued for the eager clear."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset // w.L2.word_bits          # BITS_PER_LONG of the world's host
        for k in range(rb.words()):
            if w.L2.word(base + k):
                bits = w.L2.xchg_word(base + k, 0)
                old = rb.bmap.word(k)
                num_dirty += (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                yield f"{rb.idstr}: xchg L2 word {base + k} into bmap word {k}"
        self._eager.append(rb)
        return num_dirty


class ClearAtNextSync(Legacy):
    """Fast-path blocks owe no chunk clear; instead each log sync first CLEARs, per memslot, what
    the previous GET fetched (the slot copy L1c), then GETs: one CLEAR per slot per sync.

    Modelled on ``kvm_physical_sync_dirty_bitmap`` and ``kvm_log_clear_one_slot``
    (accel/kvm/kvm-all.c) and the clear-log design of Peter Xu's 2019 series (commits ff4aa11419
    "kvm: Support KVM_CLEAR_DIRTY_LOG" and 002cad6b16 "migration: Split log_clear() into smaller
    chunks"), which made the clear lazy and per chunk, issued by the sender *before* it reads a page (``migration_bitmap_clear_dirty``: "Clearing it earlier won't be a
    problem, but too late will"). The bug batches the clears at the next sync, which is always
    too late: it re-creates the old get-and-clear with the clear half one round behind.
    Layer: KVM dirty log / CLEAR.

    Scenario (manual-protect KVM, a fast-path block): sync N fetches page P (L1[P] stays set and
    P writable); the sender reads P; the guest writes P, which does not fault; sync N+1 CLEARs the
    slot with the mask fetched by GET N, which holds P, so L1[P] is cleared, and its GET no longer
    reports P. The write is in no layer. When it is the last write before the stop (the last-stage
    sync starts with such a CLEAR), ``no-loss`` fails at completion. The CLEAR's mask was fetched
    and no chunk clear was owed, so no rule sees it."""

    name = "user-clear-at-next-sync"
    summary = "broken: fast-path blocks are CLEARed with the previous GET's bits at the next sync"
    expected = "unsafe"
    layer = "KVM dirty log / CLEAR"
    breaks = "no-loss"

    def memory_global_dirty_log_sync(self, w) -> Step:
        """Per slot, under ``slots_lock``: CLEAR what the previous GET fetched, GET, then OR."""
        fast = {s.index for s in w.slots if w.blocks[s.block].fast_path}
        for s in w.slots:
            yield from w.acquire("slots_lock")
            if s.index in fast:
                w.remote_clear(s.start, s.end)            # mask: L1c, the previous GET's bits
            w.kvm.get_dirty_log(s)
            yield f"KVM_CLEAR_DIRTY_LOG (previous bits) + KVM_GET_DIRTY_LOG slot {s.index}"
            w.kvm_slot_sync_dirty_pages(s)
            w.release("slots_lock")
            yield f"slot {s.index}: L1c OR-ed into L2"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Fast path without ``clear_bmap``: the next log sync does the clear."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset // w.L2.word_bits          # BITS_PER_LONG of the world's host
        for k in range(rb.words()):
            if w.L2.word(base + k):
                bits = w.L2.xchg_word(base + k, 0)
                old = rb.bmap.word(k)
                num_dirty += (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                yield f"{rb.idstr}: xchg L2 word {base + k} into bmap word {k}"
        return num_dirty


class SlotsLockDroppedBetweenGetAndOr(Periodic):
    """The log sync drops ``slots_lock`` between a memslot's KVM_GET_DIRTY_LOG and the OR of the
    fetched copy into L2, so a CLEAR can run in between.

    Modelled on ``kvm_physical_sync_dirty_bitmap`` / ``kvm_slot_sync_dirty_pages``
    (accel/kvm/kvm-all.c), where ``kvm_slot_get_dirty_log`` and
    ``cpu_physical_memory_set_dirty_lebitmap`` run in one ``kvm_slots_lock()`` section; the bug
    unlocks in between (say, to not hold the lock over the OR of a large bitmap). Layer: lock
    held too briefly.

    Scenario (manual-protect KVM): page P was sent, then written (fault: L1[P] set); the timer's
    sync GETs the slot (L1c[P] set) and releases the lock; the migration thread's burst takes an
    owed chunk clear of P's chunk, whose mask is L1c: it clears L1[P] and L1c[P]; the sync then
    ORs L1c, without P, into L2. P's write is in no layer: ``no-loss`` fails at completion. The
    CLEAR's mask held only fetched bits, so ``clear-mask-fetched`` does not see it."""

    name = "user-slots-lock-dropped-get-or"
    summary = "broken: slots_lock released between a slot's GET and its OR into L2"
    expected = "unsafe"
    layer = "lock held too briefly"
    breaks = "no-loss"

    def memory_global_dirty_log_sync(self, w) -> Step:
        """GET under the lock, unlock, then OR under the lock again."""
        for s in w.slots:
            yield from w.acquire("slots_lock")
            w.kvm.get_dirty_log(s)
            w.release("slots_lock")
            yield f"KVM_GET_DIRTY_LOG slot {s.index}, slots_lock released"
            yield from w.acquire("slots_lock")
            w.kvm_slot_sync_dirty_pages(s)
            w.release("slots_lock")
            yield f"slot {s.index}: L1c OR-ed into L2"


class TimerJoinedUnderBql(Periodic):
    """The periodic sync runs in a thread of its own, and cleanup stops it with a join while
    holding the BQL, which the thread's next tick needs.

    Modelled on ``migration_iteration_finish`` / ``cpu_throttle_stop`` (migration/migration.c,
    migration/cpu-throttle.c, which only ``timer_del`` the main-loop timer) and on what QEMU does
    whenever it joins a thread that takes the BQL: ``migrate_fd_cleanup`` wraps
    ``qemu_thread_join(&s->thread)`` in ``bql_unlock()`` / ``bql_lock()`` (the
    ``migration_thread_join`` helper of 2024 keeps that), and the background-sync series' cleanup is called without
    the BQL (docs/qemu-semantics.md section 12, patch 3/7). Layer: helper threads.

    Scenario: at the end of the migration, ``migration_iteration_finish`` takes the BQL and joins
    the timer thread; the thread wakes up from its 5 s sleep and waits for the BQL: each waits for
    the other forever (``progress``). Nothing is lost: the stream completed before."""

    name = "user-timer-joined-under-bql"
    summary = "broken: cleanup joins the timer thread while holding the BQL the thread needs"
    expected = "unsafe"
    layer = "helper threads"
    breaks = "progress"

    def migration_iteration_finish(self, w) -> Step:
        """Under the BQL: stop the timer by asking it to quit and joining it, then the base cleanup."""
        yield from w.acquire("BQL")
        self.timer_armed = False
        yield from w.join("timer")
        self.stop_threads(w)
        w.throttle_pct = 0
        w.kvm.log_stop()
        w.release("BQL")
        yield "cleanup: timer thread joined, throttle stopped, dirty logging stopped"
