"""User-style designs of the sender: the owed chunk clear, the send loop, the last stage, multifd."""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy
from dirtyproof.impl.designs.base import Step

# ---------------------------------------------------------------------------------------------
# correct


class SyncTwiceAtCompletion(Legacy):
    """``ram_save_complete`` runs the last-stage sync twice before sending what is left.

    Modelled on ``ram_save_complete`` (migration/ram.c), which runs one
    ``migration_bitmap_sync_precopy(rs, true)`` when not in postcopy; a reviewer adds a second one
    (say, to pick up DMA that devices finished while ``vm_stop`` ran).

    Why it is safe: a sync only moves dirty bits towards ``bmap`` (L1 -> L1c -> L2 -> bmap) and
    sets ``clear_bmap``; the second finds nothing new because the VM is stopped."""

    name = "user-sync-twice-at-completion"
    summary = "ram_save_complete syncs twice before the last send loop"
    expected = "safe"
    layer = "completion"

    def ram_save_complete(self, w) -> Step:
        """One more last-stage sync, then the base (its own sync, then the send loop)."""
        yield from self.migration_bitmap_sync_precopy(w, last_stage=True)
        yield from super().ram_save_complete(w)


class SkipClearOfUnfetchedChunk(Legacy):
    """The owed chunk clear skips the KVM_CLEAR_DIRTY_LOG when the slot copy has no bit in the
    range: the mask would be empty.

    Modelled on ``kvm_log_clear_one_slot`` (accel/kvm/kvm-all.c), which builds the CLEAR mask from
    ``mem->dirty_bmap`` (L1c) over the range and issues the ioctl even when the mask is all
    zeros; the variant returns early in that case, still under ``kvm_slots_lock``.

    Why it is safe: with an empty mask the ioctl clears no dirty bit and re-protects no page, and
    QEMU's clearing of L1c over the range is a no-op; L1c cannot change between the test and the
    (skipped) ioctl because a GET needs the same lock."""

    name = "user-skip-clear-unfetched-chunk"
    summary = "no KVM_CLEAR_DIRTY_LOG when L1c has no bit in the range (empty mask)"
    expected = "safe"
    layer = "KVM dirty log / CLEAR"

    def kvm_log_clear_one_slot(self, w, slot, start: int, end: int) -> Step:
        """As the base, but skip the ioctl when L1c is empty over [start, end)."""
        yield from w.acquire("slots_lock")
        if w.kvm.L1c.find_next(start, end) >= end:
            w.release("slots_lock")
            yield f"KVM_CLEAR_DIRTY_LOG slot {slot.index} pages [{start}, {end}) skipped: empty mask"
            return
        w.remote_clear(start, end)
        w.release("slots_lock")
        yield f"KVM_CLEAR_DIRTY_LOG slot {slot.index} pages [{start}, {end})"


class ClearRangeBeforeBurst(Legacy):
    """Before a burst, the owed chunk clears of the next ``burst`` pages of the current block are
    taken at once (then the burst runs as usual; its own per-page clears find nothing owed).

    Modelled on ``migration_clear_memory_region_dirty_bitmap_range`` (migration/ram.c, used by
    ``qemu_guest_free_page_hint`` and the discard path), which clears every chunk of a page range,
    and on the comment in ``migration_bitmap_clear_dirty``: "Clearing it earlier won't be a
    problem, but too late will."

    Why it is safe: it runs under ``bitmap_mutex`` like the per-page clear, and only earlier:
    every page of a cleared chunk is read after its chunk's CLEAR, so a later write faults and is
    logged."""

    name = "user-clear-range-before-burst"
    summary = "take the owed chunk clears of the next burst's pages before the send loop"
    expected = "safe"
    layer = "clear_bmap / the sender"

    def ram_save_burst(self, w) -> Step:
        """Clear the chunks of [pss_page, pss_page + burst) of the current block, then the base loop."""
        mig = w.mig
        rb = w.blocks[mig.pss_block]
        start = mig.pss_page
        end = min(rb.pages, start + w.config.burst)
        if start < end:
            first, last = rb.chunk_of(start), rb.chunk_of(end - 1)
            for chunk in range(first, last + 1):
                yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, chunk << rb.clear_bmap_shift)
        return (yield from super().ram_save_burst(w))


class SkipClearInLastStage(Legacy):
    """No owed chunk clear during the last stage (VM stopped): the write protection it re-arms
    would never be used.

    Modelled on QEMU commit fd0377150d5d "migration/ram: avoid to do log clear in the last round"
    (Yanfei Xu, merged June 2025 for 10.1), which wraps the call of
    ``migration_clear_memory_region_dirty_bitmap`` in ``migration_bitmap_clear_dirty`` with
    ``if (!rs->last_stage)``; ``rs->last_stage`` is set in ``ram_save_complete``.

    Why it is safe: in the last stage the VM is stopped, so no write can happen after a page's
    read; if the migration failed at that point tracking would not be needed either.

    Today's checker: ``clear-before-read`` (a rule about writes) fires on the first page read in
    the last stage although no write can happen any more: a rule violation, no write lost."""

    name = "user-skip-clear-in-last-stage"
    summary = "QEMU 10.1 (fd0377150d5d): no owed chunk clear once the VM is stopped for the last stage"
    expected = "safe"
    layer = "clear_bmap / the sender"

    def ram_save_setup(self, w) -> Step:
        """``ram_state_init``: ``last_stage`` starts false."""
        self.last_stage = False
        yield from super().ram_save_setup(w)

    def ram_save_complete(self, w) -> Step:
        """``rs->last_stage = true`` before the last-stage sync."""
        self.last_stage = True
        yield from super().ram_save_complete(w)

    def migration_clear_memory_region_dirty_bitmap(self, w, rb, page: int) -> Step:
        """Skipped in the last stage."""
        if getattr(self, "last_stage", False):
            return
        yield from super().migration_clear_memory_region_dirty_bitmap(w, rb, page)


# ---------------------------------------------------------------------------------------------
# broken


class MultifdNoFlushAtSync(Legacy):
    """Pages go out on two multifd channels (round robin), each a thread that delivers its queue
    in order and takes ``LATENCY_MS`` per page on the wire, with no flush between sync rounds:
    only ``ram_save_complete`` waits for the channels.

    Modelled on multifd (migration/multifd.c, ``multifd_queue_page`` / ``multifd_send_thread``)
    and on why QEMU flushes the channels at every sync round: ``multifd_send_sync_main`` and the
    ``RAM_SAVE_FLAG_MULTIFD_FLUSH`` that the destination waits for (commit 294e5a4034
    "multifd: Only flush once each full round of memory", 2023, moved the flush to the end of a
    round but kept it). Without a flush, an old copy of a page still queued on one channel can
    land after a newer copy sent on the other. Layer: the sender.

    Scenario: page P is read at v1 and queued on channel 0, which is on the wire; the guest writes P (v2);
    a sync puts P in ``bmap`` again; P is read at v2 and queued on channel 1, which delivers it;
    channel 0 then delivers v1 over it. P is not dirty again, so the destination keeps v1:
    ``no-loss`` fails at completion."""

    name = "user-multifd-no-flush-at-sync"
    summary = "broken: two multifd channels, no flush between sync rounds (old copy can land last)"
    expected = "unsafe"
    layer = "the sender"
    breaks = "no-loss"
    CHANNELS = 2
    LATENCY_MS = 10                          # the time a channel's write takes on the wire

    def attach(self, w) -> None:
        """Channel queues and the round-robin position."""
        super().attach(w)
        self.queues = [[] for _ in range(self.CHANNELS)]
        self.next_channel = 0
        self.channels_quit = False
        self.channels_flush = False

    def start_threads(self, w) -> None:
        """``multifd_send_setup``: one send thread per channel."""
        self.queues = [[] for _ in range(self.CHANNELS)]
        self.next_channel = 0
        self.channels_quit = self.channels_flush = False
        for i in range(self.CHANNELS):
            w.spawn(f"multifd{i}", self.multifd_send_thread(w, i))

    def multifd_send_thread(self, w, i: int) -> Step:
        """Deliver the queue in order; exit when told to quit, or when flushed and empty."""
        q = self.queues[i]
        while True:
            if self.channels_quit:
                q.clear()                    # cancel: the stream is thrown away
                return
            if q:
                addr, version = q.pop(0)
                yield from w.sleep_until(w.clock_ms + self.LATENCY_MS)   # on the wire
                if self.channels_quit:
                    q.clear()
                    return
                w.deliver(addr, version)
                yield f"multifd{i}: deliver page {addr} v{version}"
            elif self.channels_flush:
                return
            else:
                yield from w.sleep_until(w.clock_ms + 10)

    def ram_save_page(self, w, rb, page: int) -> Step:
        """Read the page, queue the copy on the next channel."""
        addr = rb.offset + page
        version = w.read_page(addr)
        ch = self.next_channel
        self.next_channel = (ch + 1) % self.CHANNELS
        self.queues[ch].append((addr, version))
        yield f"read page {addr} (v{version}), queued on multifd{ch}"

    def ram_save_complete(self, w) -> Step:
        """The base, then ``multifd_send_sync_main``: wait until both channels have delivered all."""
        yield from super().ram_save_complete(w)
        self.channels_flush = True
        for i in range(self.CHANNELS):
            yield from w.join(f"multifd{i}")

    def migration_cancel(self, w) -> Step:
        """``multifd_send_shutdown``: the channels drop their queues and exit before the cleanup."""
        self.channels_quit = True
        for i in range(self.CHANNELS):
            yield from w.join(f"multifd{i}")
        yield from super().migration_cancel(w)
