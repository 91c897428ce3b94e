"""Held-out designs that differ from the shipped ones and are still safe (to measure false alarms).

Each reorders work or adds work in a way that keeps every property; an engine that reports one of
them unsafe (a property, not a rule) raises a false alarm. HELD OUT: never tune a search on these.
"""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy, Periodic
from dirtyproof.impl.steps import BMAP_TAKE, COMPLETE_DRAINED, ITERATE_DONE, L2_TEST_AND_CLEAR, L2_XCHG
from dirtyproof.impl.steps import Step as S
from dirtyproof.impl.bitmap import WORD_MASK


class PeriodicPlusIterateSync(Periodic):
    """Both 9.2's periodic timer and an iterate-sync from ``ram_save_iterate`` (BQL taken first).

    Extra work: two actors now start syncs. Safe because every sync runs as QEMU's
    ``migration_bitmap_sync`` does, with the BQL held (so two syncs never overlap: the timer's
    callback holds it, and ``ram_save_iterate`` takes it before the sync, dropping it before it
    takes ``bitmap_mutex`` for the burst, in the order BQL -> bitmap_mutex).
    """

    name = "heldout2-ok-periodic-plus-iterate-sync"
    summary = "periodic timer and an iterate-sync every few seconds (BQL held), both"
    breaks = None

    def ram_save_iterate(self, w):
        """Sync first when due (BQL, then the ordinary sync), then a burst as usual."""
        mig, cfg = w.mig, w.config
        if (cfg.auto_converge and mig.dirty_sync_count > 1
                and w.clock_ms - mig.last_sync_end_ms >= cfg.iterate_sync_ms):
            yield from w.acquire("BQL")
            yield from self.migration_bitmap_sync_precopy(w, last_stage=False)
            w.release("BQL")
        yield from super().ram_save_iterate(w)


class PeriodicEagerClearInSync(Periodic):
    """The fast-path sync clears the block's dirty log eagerly instead of owing lazy chunk clears.

    Different work: this is QEMU's own path for a RAMBlock without ``clear_bmap``
    (``cpu_physical_memory_sync_dirty_bitmap`` calls ``memory_region_clear_dirty_bitmap`` over the
    range when ``rb->clear_bmap`` is NULL, include/exec/ram_addr.h; that was the only path before
    the lazy-clear series of QEMU 4.1). Safe because the CLEAR runs inside the sync, under the BQL
    and ``bitmap_mutex``, after this sync's log sync has ORed every fetched bit (its mask, L1c) into
    L2 and its walk has moved L2 into ``bmap``: every bit it erases from KVM is in ``bmap``, and no
    page can be read between the move and the CLEAR.
    """

    name = "heldout2-ok-eager-clear-in-sync"
    summary = "fast-path sync does the block's remote clear eagerly (QEMU's no-clear_bmap path)"
    breaks = None

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        """Fast path: the word walk, then one eager remote clear of the block. Slow path as QEMU's."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        base = rb.offset // rb.word_bits
        for k in range(rb.words()):
            if w.L2.word(base + k, rb.word_bits):
                bits = w.L2.xchg_word(base + k, 0, rb.word_bits)
                old = rb.bmap.word(k)
                num_dirty += (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                yield S(L2_XCHG, block=rb.index, word=base + k)
        yield from self.memory_region_clear_dirty_bitmap(w, rb.offset, rb.offset + rb.pages)
        return num_dirty


class PeriodicSkipLastStageClear(Periodic):
    """No remote clear in the last stage (the VM is stopped): QEMU 10.1's change.

    Ported from Yanfei Xu's ``migration/ram: avoid to do log clear in the last round`` (PULL 01/11
    of 23 Jun 2025, merged for QEMU 10.1): ``migration_bitmap_clear_dirty`` calls
    ``migration_clear_memory_region_dirty_bitmap`` only while ``!rs->last_stage``. Safe because
    after ``vm_stop`` no guest or device write can come, so re-arming write protection protects
    nothing, and no sync follows the last-stage one. (The rule ``clear-before-read`` is not
    evaluated with the guest stopped, for that reason.)
    """

    name = "heldout2-ok-skip-last-stage-clear"
    summary = "QEMU 10.1: no remote clear of a chunk in the last stage (VM stopped)"
    breaks = None
    # declared design state: RAMState.last_stage of the current attempt
    last_stage: bool = False

    def ram_save_setup(self, w):
        """A new RAMState: not in the last stage."""
        self.last_stage = False
        yield from super().ram_save_setup(w)

    def ram_save_complete(self, w):
        """``ram_save_complete`` sets ``last_stage`` before its sync and drain."""
        self.last_stage = True
        yield from super().ram_save_complete(w)

    def migration_bitmap_clear_dirty(self, w, rb, page: int):
        """The owed chunk clear only outside the last stage, then QEMU's take."""
        if not self.last_stage:
            yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        return ret


class Periodic2019SenderLocking(Periodic):
    """The sender takes ``bitmap_mutex`` per page, inside ``migration_bitmap_clear_dirty``, as QEMU 4.x did.

    Different locking: after Wei Wang's ``migration: use bitmap_mutex in
    migration_bitmap_clear_dirty`` (free-page-hint series, 2018, QEMU 3.1),
    ``migration_bitmap_clear_dirty`` locked ``bitmap_mutex`` around the owed chunk clear and the
    ``bmap`` test-and-clear (as the lazy-clear patch of July 2019 shows), and ``ram_save_iterate``
    held no ``bitmap_mutex`` around its loop; ``ram_save_complete`` likewise. (Later QEMU takes the
    mutex around the whole send loop, which the shipped model follows.)
    Safe because every write of ``bmap``, ``clear_bmap`` and ``migration_dirty_pages`` is still
    under the mutex, the page's chunk clear still precedes its read, and a page taken from
    ``bmap`` is read within the same ``ram_find_and_save_block``. The search itself reads ``bmap``
    without the lock; a stale answer only costs a test-and-clear that finds the bit gone.
    """

    name = "heldout2-ok-2019-sender-locking"
    summary = "QEMU 4.x locking: bitmap_mutex per page in migration_bitmap_clear_dirty, not per burst"
    breaks = None

    def ram_save_iterate(self, w):
        """The send loop with no ``bitmap_mutex`` around it."""
        sent = yield from self.ram_save_burst(w)
        yield S(ITERATE_DONE, value=sent)

    def ram_save_complete(self, w):
        """Last-stage sync, then send until clean, each page locking for itself."""
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        while (yield from self.ram_find_and_save_block(w)):
            pass
        yield S(COMPLETE_DRAINED)

    def migration_bitmap_clear_dirty(self, w, rb, page: int):
        """Lock, owed chunk clear, ``bmap`` test-and-clear and decrement, unlock (in the take's step)."""
        yield from w.acquire("bitmap_mutex")
        yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        w.release("bitmap_mutex")
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        return ret


class LegacySlowPathClearBeforeFetch(Legacy):
    """The slow-path sync issues a page's remote clear before its L2 test-and-clear (reordered).

    Reordered work: QEMU's ``cpu_physical_memory_test_and_clear_dirty`` (system/physmem.c) clears
    the L2 bit first and then the KVM log. Safe the other way round because the CLEAR's mask is
    L1c, the bits the sync's own log sync fetched and already ORed into L2 under the BQL: the
    erased L1 bit is still in L2 when the CLEAR runs and the test-and-clear right after moves it
    into ``bmap`` (a write after the CLEAR faults into L1 again).
    """

    name = "heldout2-ok-slow-path-clear-before-fetch"
    summary = "slow-path sync: remote clear of the page, then its L2 test-and-clear (reordered)"
    breaks = None

    def sync_one_page(self, w, rb, k: int):
        """Remote clear of the page (a step per memslot), then the L2 test-and-clear (one step)."""
        page = rb.offset + k
        if not w.L2.test(page) and not (w.kvm.manual_protect and w.kvm.L1c.test(page)):
            return False
        yield from self.memory_region_clear_dirty_bitmap(w, page, page + 1)
        dirty = w.L2.test_and_clear(page)
        yield S(L2_TEST_AND_CLEAR, block=rb.index, page=page, value=dirty)
        return dirty


class LegacyPreDrainBeforeStop(Legacy):
    """Before stopping the VM, the completion sends everything pending once more (extra work).

    Extra work: to shorten the downtime, ``migration_completion`` runs one more full send round
    (``ram_save_iterate`` until a clean round) while the guest still runs, then does QEMU's
    completion unchanged: ``vm_stop``, the last-stage sync and the drain until clean
    (migration/migration.c, ``ram_save_complete`` in migration/ram.c). Safe because the pre-drain is
    an ordinary iteration and every write after it is still caught by the last-stage sync.
    """

    name = "heldout2-ok-pre-drain-before-stop"
    summary = "one more full send round before vm_stop, then QEMU's completion"
    breaks = None

    def migration_completion(self, w):
        """Send until a clean round (the guest runs), then QEMU's completion."""
        while True:
            yield from w.acquire("bitmap_mutex")
            sent = yield from self.ram_save_burst(w)
            w.release("bitmap_mutex")
            yield S(ITERATE_DONE, value=sent)
            if sent < w.config.burst:
                break
        yield from super().migration_completion(w)
