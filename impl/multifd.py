"""Multifd sending: the migration thread queues pages, N channel threads send them later.
On only with ``Config.multifd_channels`` > 0 (0: the single in-order stream of ``ram_save_page``).

Modelled on QEMU's ``migration/multifd.c`` and ``migration/multifd-nocomp.c`` (``multifd_queue_page``,
``multifd_send`` / ``multifd_send_pages``, ``multifd_send_thread``, ``multifd_send_sync_main``,
``multifd_recv_thread`` and ``multifd_recv_sync_main``) and ``migration/ram.c``
(``ram_save_multifd_page``, ``find_dirty_block``'s per-round ``RAM_SAVE_FLAG_MULTIFD_FLUSH``,
``ram_save_complete``'s final sync), as of QEMU 9.x (e.g. qemu/qemu d1c81c34). This is the
transport, not bookkeeping: the calls that decide *when* a page is queued and when the channels
are flushed are design methods (:meth:`dirtyproof.impl.designs.base.Design.ram_save_multifd_page`,
:meth:`~dirtyproof.impl.designs.base.Design.multifd_send_sync_main`), so a design can change them.

The protocol, as the model runs it:

- **Queueing** (the migration thread, after ``migration_bitmap_clear_dirty`` took the page's bit):
  the page's address goes into the thread's current batch (``multifd_send_state->pages``); the
  content is *not* read. A full batch (``MULTIFD_PACKET_PAGES``) is handed to the next idle
  channel, round robin; if every channel is busy the migration thread waits (QEMU's
  ``channels_ready`` semaphore).
- **A send channel** (thread ``multifd_send_<i>``, runnable only while it holds a batch) reads
  the content of every page of its batch in one step (``sendmsg`` copies the pages), then, as a
  separate step, the destination's receive thread of that channel writes them into guest RAM
  (``multifd_recv_thread``: whatever arrives is written, in arrival order; nothing compares
  versions). Between the two, other channels and the migration thread run.
- **The flush** (``multifd_send_sync_main``): the partial batch is handed out, then the migration
  thread waits until every channel has delivered everything it was given; the destination's
  ``multifd_recv_sync_main`` (on ``RAM_SAVE_FLAG_MULTIFD_FLUSH``) waits for every receive channel
  to reach the sync point. Delivery is immediate in the model, so the sender's wait is the
  destination's barrier. QEMU flushes once per round (``find_dirty_block`` wrapping to the first
  block, ``migrate_multifd_flush_after_each_section`` off: the default since 8.x) and at the
  end of ``ram_save_complete``; a page is taken at most once per round, so no two copies of a
  page are ever in flight on different channels at once.

Simplifications (labelled in docs/qemu-semantics.md): a packet is 2 pages (QEMU: 128 pages of
4 KiB); a channel's read of its packet is one step and its delivery one step; the receive side
has no threads of its own (a channel's delivery is its receive thread's write); the cleanup
(``migrate_fd_cleanup``) ends the channels with ``multifd_send_shutdown`` after the migration
thread's join, without the BQL the real cleanup retakes for it (the channels take no lock).
"""
from __future__ import annotations

from .steps import MULTIFD_RECV, MULTIFD_SEND, MULTIFD_WAIT
from .steps import Step as S

MULTIFD_PACKET_PAGES = 2      # pages per packet (QEMU: MULTIFD_PACKET_SIZE / page size = 128)
CHANNEL_PREFIX = "multifd_send_"


def channel_name(i: int) -> str:
    """The actor name of send channel ``i`` (QEMU names its threads ``mig/src/send_<i>``)."""
    return f"{CHANNEL_PREFIX}{i}"


class MultiFDSendState:
    """``multifd_send_state`` of one attempt: the migration thread's batch and each channel's
    packet (pages handed to it, not yet delivered). Transport state: no design writes it directly;
    the checker's record of queued pages is in the world's ghost."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.pages: list[int] = []                      # the batch being filled
        self.packet: list[list[int]] = [[] for _ in range(channels)]
        self.read: list[list[tuple[int, int]] | None] = [None] * channels   # (page, version) read
        self.next_channel = 0
        self.exiting = False          # multifd_send_state->exiting: set by multifd_send_shutdown

    def idle(self, i: int) -> bool:
        """Whether channel ``i`` holds nothing to send."""
        return not self.packet[i]

    def drained(self) -> bool:
        """Whether every channel delivered everything it was given (the flush's wait is over)."""
        return all(not p for p in self.packet)

    def free_channel(self) -> int | None:
        """The next idle channel from ``next_channel`` round robin, or ``None`` if all are busy."""
        for k in range(self.channels):
            i = (self.next_channel + k) % self.channels
            if self.idle(i):
                return i
        return None


def multifd_send_pages(w):
    """``multifd_send_pages``: hand the batch to the next idle channel, waiting while none is."""
    st = w.multifd
    if not st.pages:
        return
    yield from w.wait_until(lambda: st.free_channel() is not None, "a free multifd channel")
    i = st.free_channel()
    st.packet[i], st.pages = st.pages, []
    st.next_channel = (i + 1) % st.channels


def multifd_queue_page(w, page: int):
    """``multifd_queue_page``: the page's address joins the batch; a full batch is sent."""
    w.multifd_queued(page)
    w.multifd.pages.append(page)
    if len(w.multifd.pages) >= MULTIFD_PACKET_PAGES:
        yield from multifd_send_pages(w)


def multifd_flush(w):
    """The sender's side of ``multifd_send_sync_main``: send the partial batch, then wait until
    every channel has delivered (the destination's ``multifd_recv_sync_main`` barrier with it)."""
    yield from multifd_send_pages(w)
    st = w.multifd
    yield from w.wait_until(st.drained, "every multifd channel to drain")


def multifd_send_shutdown(w):
    """``multifd_send_shutdown`` (``migrate_fd_cleanup``, after the migration thread's join):
    ``multifd_send_terminate_threads`` sets ``exiting`` and posts every channel, which exits at
    the top of its loop (a packet it is delivering is finished first; after a cancel the
    destination is thrown away, so nothing is owed); then each channel thread is joined."""
    st = w.multifd
    st.exiting = True
    for i in range(st.channels):
        yield from w.join(channel_name(i))


def multifd_send_thread(w, i: int):
    """``multifd_send_thread`` of channel ``i`` with its receive side: read the packet's pages
    (one step), then the destination writes them in arrival order (one step)."""
    st = w.multifd
    while True:
        if st.exiting:
            return            # multifd_send_should_exit() after the channel's semaphore wait
        pages = st.packet[i]
        st.read[i] = [(p, w.read_page(p, queued=True)) for p in pages]
        yield S(MULTIFD_SEND, thread=channel_name(i), value=tuple(st.read[i]))
        for p, v in st.read[i]:
            w.deliver(p, v)
        st.read[i] = None
        st.packet[i] = []
        yield S(MULTIFD_RECV, thread=channel_name(i), value=len(pages))


__all__ = ["MultiFDSendState", "MULTIFD_PACKET_PAGES", "CHANNEL_PREFIX", "channel_name", "multifd_queue_page",
           "multifd_flush", "multifd_send_pages", "multifd_send_thread", "multifd_send_shutdown", "MULTIFD_WAIT"]
