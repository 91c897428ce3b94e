"""Free-page hinting (virtio-balloon, VIRTIO_BALLOON_F_FREE_PAGE_HINT): the guest driver, the
device's iothread and its precopy notifier. On only with ``Config.free_page_hinting``.

Modelled on QEMU's ``hw/virtio/virtio-balloon.c`` (``get_free_page_hints``,
``virtio_ballloon_get_free_page_hints``, ``virtio_balloon_free_page_start/stop/done``,
``virtio_balloon_free_page_hint_notify``, ``virtio_balloon_get_config``; as of QEMU 9.2-10.x,
e.g. qemu/qemu d1c81c34) and the Linux driver's protocol (report a cmd id, then free pages).
This is device and guest code, not migration bookkeeping: the part of the protocol that lives in
``migration/ram.c`` (``qemu_guest_free_page_hint``) is a design method
(:meth:`dirtyproof.impl.designs.base.Design.qemu_guest_free_page_hint`), so a design can change it.

The protocol, as the model runs it:

- **The device** has ``free_page_hint_status`` (S_STOP, S_REQUESTED, S_START, S_DONE) and
  ``free_page_hint_cmd_id``. Its precopy notifier is called by ``migration_bitmap_sync_precopy``
  around every sync that goes through it (:meth:`VirtIOBalloon.free_page_hint_notify`): before
  the sync it stops hinting (S_STOP), after it it starts a new cycle with a new cmd id
  (S_REQUESTED), or, with the VM stopped (the last stage), says S_DONE; cleanup says S_DONE.
  Each change takes ``free_page_lock`` and notifies the guest (``virtio_notify_config``).
- **The guest** (``["guest-hint", page]``, a world environment step) reads the cmd id the last
  config notification showed it: S_STOP and S_DONE show the reserved ids 0 and 1 (the guest does
  not report); a new cmd id makes it start a cycle (it queues the cmd id), and it then queues the
  page as free. The page is then *declared free* at its current version (the world records that
  in the ghost: such a page, not written since, need not reach the destination). The guest may
  write it again at any time afterwards (every vCPU write is a possible reuse).
- **The iothread** (thread actor ``iothread``, runnable while the VM runs and the queue is not
  empty) pops one element per ``free_page_lock`` section: a cmd id equal to the requested one
  moves S_REQUESTED to S_START, any cmd id while S_START means S_STOP; a free page is handed to
  the design's ``qemu_guest_free_page_hint`` only while S_START, otherwise it is dropped. So the
  hints of a cycle that a stop ended are never applied after the sync that followed the stop.

Simplifications (labelled as such in docs/qemu-semantics.md): a hint is one page; the guest sees
a config change at once (a late guest only queues more hints the device drops); the guest never
queues its own stop id; the iothread's busy poll while S_START is modelled as "runnable while
there is an element to pop"; postcopy (where the notifier does nothing) is not modelled.
"""
from __future__ import annotations

from .steps import FREE_PAGE_VQ, PRECOPY_NOTIFY
from .steps import Step as S

# virtio-balloon's free_page_hint_status values
S_STOP, S_REQUESTED, S_START, S_DONE = "S_STOP", "S_REQUESTED", "S_START", "S_DONE"
# reserved cmd ids of the virtio spec; the device's own ids start at CMD_ID_MIN
VIRTIO_BALLOON_CMD_ID_STOP, VIRTIO_BALLOON_CMD_ID_DONE = 0, 1
VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN = 0x80000000
UINT_MAX = 0xFFFFFFFF
# precopy_notify reasons (include/migration/misc.h, PrecopyNotifyReason)
PRECOPY_NOTIFY_SETUP = "SETUP"
PRECOPY_NOTIFY_BEFORE_BITMAP_SYNC = "BEFORE_BITMAP_SYNC"
PRECOPY_NOTIFY_AFTER_BITMAP_SYNC = "AFTER_BITMAP_SYNC"
PRECOPY_NOTIFY_COMPLETE = "COMPLETE"
PRECOPY_NOTIFY_CLEANUP = "CLEANUP"
PRECOPY_REASONS = (PRECOPY_NOTIFY_SETUP, PRECOPY_NOTIFY_BEFORE_BITMAP_SYNC, PRECOPY_NOTIFY_AFTER_BITMAP_SYNC,
                   PRECOPY_NOTIFY_COMPLETE, PRECOPY_NOTIFY_CLEANUP)

IOTHREAD = "iothread"          # the balloon's iothread (its free_page_bh runs there)
GUEST_HINT = "guest-hint"      # the environment actor: the guest driver reports a free page
FREE_PAGE_LOCK = "free_page_lock"


class VirtIOBalloon:
    """The device's free-page-hint state, its virtqueue, and the guest driver's view of it.

    Every field is device or guest state (a design may not touch it); the checker's record of
    which pages the guest declared free is in the world's ghost."""

    def __init__(self) -> None:
        self.free_page_hint_status = S_STOP
        self.free_page_hint_cmd_id = VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN
        # the free page virtqueue, in order: ("cmd_id", id) or ("hint", ram_addr page)
        self.free_page_vq: list[tuple[str, int]] = []
        # the guest driver: the cmd id its last config read showed, and the one it reports under
        self.cmd_id_received = VIRTIO_BALLOON_CMD_ID_STOP
        self.cmd_id_active = VIRTIO_BALLOON_CMD_ID_STOP

    def realize(self, w) -> None:
        """``virtio_balloon_device_realize``: register the precopy notifier, start the iothread."""
        w.precopy_notifiers.append(self.free_page_hint_notify)
        w.spawn(IOTHREAD, self.get_free_page_hints(w))

    # ------------------------------------------------------------------------------------------
    # the config space and the notifier (run by whoever calls precopy_notify, BQL held)
    def config_cmd_id(self) -> int:
        """``virtio_balloon_get_config``'s ``free_page_hint_cmd_id``: the id while S_REQUESTED,
        the reserved STOP id while S_STOP (and S_START: the field is left zero), DONE while S_DONE."""
        if self.free_page_hint_status == S_REQUESTED:
            return self.free_page_hint_cmd_id
        if self.free_page_hint_status == S_DONE:
            return VIRTIO_BALLOON_CMD_ID_DONE
        return VIRTIO_BALLOON_CMD_ID_STOP

    def free_page_hint_notify(self, w, reason: str):
        """``virtio_balloon_free_page_hint_notify``: stop before a sync, start a new cycle after it
        (S_DONE instead when the VM is stopped: the last stage), S_DONE at cleanup."""
        if reason == PRECOPY_NOTIFY_BEFORE_BITMAP_SYNC:
            if self.free_page_hint_status != S_STOP:
                yield from self._set_status(w, S_STOP, reason)
        elif reason == PRECOPY_NOTIFY_AFTER_BITMAP_SYNC and w.vm_running:
            yield from self._set_status(w, S_REQUESTED, reason, new_cmd_id=True)
        elif reason in (PRECOPY_NOTIFY_AFTER_BITMAP_SYNC, PRECOPY_NOTIFY_CLEANUP):
            if self.free_page_hint_status != S_DONE:
                yield from self._set_status(w, S_DONE, reason)

    def _set_status(self, w, status: str, reason: str, new_cmd_id: bool = False):
        """One change of status under ``free_page_lock`` (waiting for an element the iothread
        is processing), then ``virtio_notify_config``: the guest reads the new cmd id."""
        yield from w.acquire(FREE_PAGE_LOCK)
        if new_cmd_id:
            cur = self.free_page_hint_cmd_id
            self.free_page_hint_cmd_id = VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN if cur == UINT_MAX else cur + 1
        self.free_page_hint_status = status
        w.release(FREE_PAGE_LOCK)
        self.cmd_id_received = self.config_cmd_id()
        yield S(PRECOPY_NOTIFY, value=reason, note=f"-> {status}")

    # ------------------------------------------------------------------------------------------
    # the guest driver (an environment step of the world)
    def guest_report(self, page: int) -> tuple[str, bool]:
        """The guest reports ``page`` free if its last config read showed a cmd id to report
        under (queuing that id first when it is new). Returns the label and whether it did."""
        rx = self.cmd_id_received
        if rx in (VIRTIO_BALLOON_CMD_ID_STOP, VIRTIO_BALLOON_CMD_ID_DONE):
            why = "STOP" if rx == VIRTIO_BALLOON_CMD_ID_STOP else "DONE"
            return f"guest: page {page} free, not reported (cmd id {why})", False
        started = ""
        if rx != self.cmd_id_active:
            self.cmd_id_active = rx
            self.free_page_vq.append(("cmd_id", rx))
            started = f"queues cmd id {rx:#x}, then "
        self.free_page_vq.append(("hint", page))
        return f"guest {started}reports page {page} free", True

    # ------------------------------------------------------------------------------------------
    # the iothread
    def has_work(self, w) -> bool:
        """Whether the iothread can run: an element is queued and the VM runs (a stopped VM sets
        ``block_iothread``; the source VM never runs again in the model once it stopped)."""
        return bool(self.free_page_vq) and w.vm_running

    def get_free_page_hints(self, w):
        """The iothread's ``virtio_ballloon_get_free_page_hints``: one element per
        ``free_page_lock`` section (``get_free_page_hints``), the lock released between two."""
        while True:
            yield from w.acquire(FREE_PAGE_LOCK)
            if not self.has_work(w):          # the VM stopped while it waited for the lock
                w.release(FREE_PAGE_LOCK)
                yield S(FREE_PAGE_VQ, value="blocked")
                continue
            kind, val = self.free_page_vq.pop(0)
            page = None
            if kind == "cmd_id":
                if self.free_page_hint_status == S_REQUESTED and val == self.free_page_hint_cmd_id:
                    self.free_page_hint_status, out = S_START, "cmd id: S_START"
                elif self.free_page_hint_status == S_START:
                    self.free_page_hint_status, out = S_STOP, "cmd id: S_STOP"
                else:
                    out = "stale cmd id ignored"
            else:
                page = val
                if self.free_page_hint_status == S_START:
                    yield from w.design.qemu_guest_free_page_hint(w, page, 1)
                    out = "hint applied"
                else:
                    out = f"hint dropped ({self.free_page_hint_status})"
            w.release(FREE_PAGE_LOCK)
            yield S(FREE_PAGE_VQ, page=page, value=out)


__all__ = ["VirtIOBalloon", "IOTHREAD", "GUEST_HINT", "FREE_PAGE_LOCK", "PRECOPY_REASONS",
           "PRECOPY_NOTIFY_BEFORE_BITMAP_SYNC", "PRECOPY_NOTIFY_AFTER_BITMAP_SYNC", "PRECOPY_NOTIFY_CLEANUP",
           "PRECOPY_NOTIFY_SETUP", "PRECOPY_NOTIFY_COMPLETE", "S_STOP", "S_REQUESTED", "S_START", "S_DONE"]
