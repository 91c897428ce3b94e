"""What one atomic step did, as a record: the interface between design code and every consumer.

A design's step generator yields a :class:`Step` at the end of each atomic step (a plain string is
accepted as a :data:`NOTE` step, for designs that need no projection). The human label is
rendered from the record (:meth:`Step.render`); the prover's projection, the hunter's event
filters and every other consumer read the record's fields (``kind``, ``block``, ``page``, ``word``,
``slot``...) and the thread's declared regions (:mod:`dirtyproof.impl.regions`), never the wording
of a label, a frame's function name or a local variable.
"""
from __future__ import annotations

from dataclasses import dataclass

# -- kinds ------------------------------------------------------------------------------------
# waiting and threads (the world yields these itself)
WAIT, JOIN, SLEEP, EXIT = "wait", "join", "sleep", "exit"
# setup, iterations, completion, cancel
INIT_BITMAPS, SETUP_DONE, ITERATE_DONE = "init_bitmaps", "setup_done", "iterate_done"
VM_STOP, COMPLETE_DRAINED, STREAM_COMPLETE, CLEANUP, CANCELLED = (
    "vm_stop", "complete_drained", "stream_complete", "cleanup", "cancelled")
# migration_completion_end: the state becomes COMPLETED under the BQL, unless a cancel came first
COMPLETION_END = "completion_end"
# the lifecycle's other steps: helper threads started (state still SETUP), the WAIT_UNPLUG phase,
# migration_iteration_finish, qemu_savevm_state_cleanup (impl/designs/base.py)
THREADS_STARTED, WAIT_UNPLUG, ITERATION_FINISH, SAVEVM_CLEANUP = (
    "threads_started", "wait_unplug", "iteration_finish", "savevm_cleanup")
# the log sync (L1 -> L1c -> L2) and the L2 -> bitmap sync
KVM_GET, KVM_OR, SYNC_DONE = "kvm_get", "kvm_or", "sync_done"
L2_XCHG, L2_READ_WORD, L2_ZERO_WORD, CLEAR_BMAP_SET, L2_TEST_AND_CLEAR = (
    "l2_xchg", "l2_read_word", "l2_zero_word", "clear_bmap_set", "l2_test_and_clear")
# the remote clear and the send
KVM_CLEAR, CHUNK_TAKEN, BMAP_TAKE, READ, DELIVER = "kvm_clear", "chunk_taken", "bmap_take", "read", "deliver"
# helper threads and the seed series' bitmaps
TIMER_RETURN, WATCHER_FLIP, WATCHER_DONE = "timer_return", "watcher_flip", "watcher_done"
ITER_PROLOGUE, ITER_FOLD, ITER_TAIL = "iter_prologue", "iter_fold", "iter_tail"
# free-page hinting (impl/balloon.py): the precopy notifier, the iothread's virtqueue, ram.c's hint
PRECOPY_NOTIFY, FREE_PAGE_VQ, FREE_PAGE_HINT = "precopy_notify", "free_page_vq", "free_page_hint"
# multifd (impl/multifd.py): queue a page, a channel's read and delivery, waits, the per-round flush
MULTIFD_QUEUE, MULTIFD_SEND, MULTIFD_RECV, MULTIFD_WAIT, MULTIFD_SYNC = (
    "multifd_queue", "multifd_send", "multifd_recv", "multifd_wait", "multifd_sync")
# the dirty ring (impl/kvm.py): the kick, one vCPU ring's harvest, KVM_RESET_DIRTY_RINGS, one
# slot's publication (and zeroing) by the log sync, the reaper thread's BQL release
RING_KICK, RING_REAP, RING_RESET, RING_PUBLISH, REAPER_DONE = (
    "ring_kick", "ring_reap", "ring_reset", "ring_publish", "reaper_done")
# a step of a user's design that no consumer needs to understand (free text)
NOTE = "note"

KINDS = frozenset((WAIT, JOIN, SLEEP, EXIT, INIT_BITMAPS, SETUP_DONE, ITERATE_DONE, VM_STOP, COMPLETE_DRAINED,
                   STREAM_COMPLETE, COMPLETION_END, CLEANUP, CANCELLED, THREADS_STARTED, WAIT_UNPLUG, ITERATION_FINISH,
                   SAVEVM_CLEANUP, KVM_GET, KVM_OR, SYNC_DONE, L2_XCHG, L2_READ_WORD,
                   L2_ZERO_WORD, CLEAR_BMAP_SET, L2_TEST_AND_CLEAR, KVM_CLEAR, CHUNK_TAKEN, BMAP_TAKE, READ,
                   DELIVER, TIMER_RETURN, WATCHER_FLIP, WATCHER_DONE, ITER_PROLOGUE, ITER_FOLD, ITER_TAIL, NOTE,
                   PRECOPY_NOTIFY, FREE_PAGE_VQ, FREE_PAGE_HINT, MULTIFD_QUEUE, MULTIFD_SEND, MULTIFD_RECV,
                   MULTIFD_WAIT, MULTIFD_SYNC, RING_KICK, RING_REAP, RING_RESET, RING_PUBLISH, REAPER_DONE))

# Fetches of L2 bits into a sync (the hunter's "fetch" event).
FETCHES = frozenset((L2_XCHG, L2_READ_WORD, L2_TEST_AND_CLEAR))


@dataclass(frozen=True)
class Step:
    """One atomic step's record. ``block`` is a RAMBlock index, ``page`` a ram_addr page, ``word``
    an L2 word index, ``slot`` a memslot index; ``into`` names the bitmap a fetch went to;
    ``value`` is the step's result where it has one (dirty or not, pages sent, a version...);
    ``note`` is extra wording for the label, ``text`` replaces the label altogether. Consumers
    read the fields, never ``note`` or ``text``."""

    kind: str
    block: int | None = None
    page: int | None = None
    word: int | None = None
    slot: int | None = None
    chunk: int | None = None
    start: int | None = None
    end: int | None = None
    lock: str | None = None
    thread: str | None = None
    into: str | None = None
    value: object = None
    note: str = ""
    text: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown step kind {self.kind!r}")

    def render(self, w) -> str:
        """The human label of this step in world ``w``."""
        if self.text is not None:
            return self.text
        base = _TEMPLATES[self.kind](self, w)
        return f"{base} {self.note}" if self.note else base


def _b(s: Step, w) -> str:
    return w.blocks[s.block].idstr if s.block is not None else "?"


def _bword(s: Step, w) -> int:
    rb = w.blocks[s.block]
    return s.word - rb.offset // rb.word_bits


_TEMPLATES = {
    WAIT: lambda s, w: f"wait for {s.lock}",
    JOIN: lambda s, w: f"join {s.thread}",
    SLEEP: lambda s, w: f"sleep until {s.value} ms",
    EXIT: lambda s, w: "exits",
    INIT_BITMAPS: lambda s, w: "ram_init_bitmaps: bmap all set, clear_bmap clear, dirty logging started",
    SETUP_DONE: lambda s, w: "setup done, BQL released",
    ITERATE_DONE: lambda s, w: f"ram_save_iterate: {s.value} page(s), bitmap_mutex released",
    VM_STOP: lambda s, w: "vm_stop: vCPUs and devices stopped",
    COMPLETE_DRAINED: lambda s, w: "ram_save_complete: bmap empty, bitmap_mutex released",
    STREAM_COMPLETE: lambda s, w: "stream complete, BQL released",
    COMPLETION_END: lambda s, w: ("migration_completion_end: COMPLETED" if s.value else
                                  "migration_completion_end: cancelled first, not COMPLETED"),
    CLEANUP: lambda s, w: "migrate_fd_cleanup: BQL dropped, threads joined",
    CANCELLED: lambda s, w: "migrate_fd_cleanup: BQL dropped, threads joined, migration cancelled",
    THREADS_STARTED: lambda s, w: "helper threads started (state still SETUP)",
    WAIT_UNPLUG: lambda s, w: "qemu_savevm_wait_unplug: WAIT_UNPLUG until the failover unplug is done",
    ITERATION_FINISH: lambda s, w: "migration_iteration_finish: timers and throttle stopped, BQL released",
    SAVEVM_CLEANUP: lambda s, w: ("qemu_savevm_state_cleanup: dirty logging "
                                  f"{'stop postponed (VM stopped)' if w.dirty_log_stop_postponed else 'stopped'}"
                                  ", bitmaps and RAMState freed, BQL released"),
    KVM_GET: lambda s, w: f"KVM_GET_DIRTY_LOG slot {s.slot}",
    KVM_OR: lambda s, w: f"slot {s.slot}: L1c OR-ed into L2",
    SYNC_DONE: lambda s, w: "migration_bitmap_sync done, bitmap_mutex released",
    L2_XCHG: lambda s, w: f"{_b(s, w)}: xchg L2 word {s.word} into {s.into or 'bmap'} word {_bword(s, w)}",
    L2_READ_WORD: lambda s, w: f"{_b(s, w)}: read L2 word {s.word}",
    L2_ZERO_WORD: lambda s, w: f"{_b(s, w)}: zero L2 word {s.word}, bits into {s.into or 'bmap'} word {_bword(s, w)}",
    CLEAR_BMAP_SET: lambda s, w: f"{_b(s, w)}: clear_bmap all set (remote clear owed)",
    L2_TEST_AND_CLEAR: lambda s, w: f"{_b(s, w)}: test-and-clear L2 page {s.page} ({'dirty' if s.value else 'clean'})",
    KVM_CLEAR: lambda s, w: f"KVM_CLEAR_DIRTY_LOG slot {s.slot} pages [{s.start}, {s.end})",
    CHUNK_TAKEN: lambda s, w: f"{_b(s, w)}: clear_bmap chunk {s.chunk} taken",
    BMAP_TAKE: lambda s, w: f"{_b(s, w)}: bmap test-and-clear page {s.page} ({'was set' if s.value else 'clean'})",
    READ: lambda s, w: f"read page {s.page} (v{s.value})",
    DELIVER: lambda s, w: f"deliver page {s.page} v{s.value}",
    TIMER_RETURN: lambda s, w: "timer callback returns, BQL released",
    WATCHER_FLIP: lambda s, w: "watcher: sync_mode = MODERN",
    WATCHER_DONE: lambda s, w: "watcher: background sync done, BQL released",
    ITER_PROLOGUE: lambda s, w: f"{_b(s, w)}: iter_bmap &= ~(shadow_bmap & ~bmap)",
    ITER_FOLD: lambda s, w: f"{_b(s, w)}: iter_bmap folded into bmap",
    ITER_TAIL: lambda s, w: f"{_b(s, w)}: migration_dirty_pages += iter_dirty_pages; shadow, iter, flag cleared",
    NOTE: lambda s, w: "step",
    PRECOPY_NOTIFY: lambda s, w: f"precopy_notify {s.value}: free page hinting",
    FREE_PAGE_VQ: lambda s, w: (f"iothread: free page vq: {s.value}"
                                + (f" (page {s.page})" if s.page is not None else "") + ", free_page_lock released"),
    FREE_PAGE_HINT: lambda s, w: (f"qemu_guest_free_page_hint: {_b(s, w)} pages [{s.start}, {s.end}) cleared from bmap "
                                  f"({s.value} were set), bitmap_mutex released"),
    MULTIFD_QUEUE: lambda s, w: f"{_b(s, w)}: multifd_queue_page page {s.page} (not read yet)",
    MULTIFD_SEND: lambda s, w: (f"{s.thread}: reads "
                                + ", ".join(f"page {p} (v{v})" for p, v in s.value)),
    MULTIFD_RECV: lambda s, w: f"{s.thread}: destination writes its {s.value} page(s)",
    MULTIFD_WAIT: lambda s, w: f"wait for {s.value}",
    MULTIFD_SYNC: lambda s, w: f"multifd_send_sync_main ({s.value}): channels drained, MULTIFD_FLUSH sent",
    RING_KICK: lambda s, w: "kvm_cpu_synchronize_kick_all: every vCPU's buffer flushed into its ring",
    RING_REAP: lambda s, w: (f"vcpu{s.value[0]}'s dirty ring: {len(s.value[1])} entr"
                             f"{'y' if len(s.value[1]) == 1 else 'ies'} "
                             + (f"(page {', '.join(map(str, s.value[1]))}) " if s.value[1] else "")
                             + "marked in the slot bitmaps (L1c), flagged collected"),
    RING_RESET: lambda s, w: (f"KVM_RESET_DIRTY_RINGS: {s.value} entr{'y' if s.value == 1 else 'ies'} recycled, "
                              "pages write-protected again, slots_lock released" if s.value
                              else "nothing collected: no reset, slots_lock released"),
    RING_PUBLISH: lambda s, w: (f"slot {s.slot}: slot bitmap (L1c) "
                                + ("and the backup bitmap " if s.value else "")
                                + "OR-ed into L2, slot bitmap zeroed"),
    REAPER_DONE: lambda s, w: "kvm-reaper: reap done, BQL released",
}


def as_step(value) -> Step:
    """What a design's generator yielded, as a :class:`Step` (a string is a :data:`NOTE`);
    ``TypeError`` for anything else."""
    if isinstance(value, Step):
        return value
    if isinstance(value, str):
        return Step(NOTE, text=value)
    raise TypeError(f"a step must yield a dirtyproof.impl.steps.Step (or a str), not {type(value).__name__} "
                    f"{value!r}")
