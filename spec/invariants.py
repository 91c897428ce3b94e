"""The invariants of dirty-page bookkeeping: id, plain statement, scope and executable predicate.

Two kinds. A **property** is what "unsafe" means: a write lost at completion (``no-loss``), its
per-step strengthening (``coverage``), a wrong counter, and the runtime checks (lock order,
progress, send integrity). A **rule** is one of QEMU's sufficient conditions (clear before read,
CLEAR masks within fetched bits, ...): breaking one is reported as a rule violation, with no lost
write shown unless a property breaks too. Each rule says when it can matter and is evaluated only
then.

This module is the single source for the hunter, the replayer, the prover's documentation and the
generated docs. It depends on the reference model's world only through its public state and the
world's ghost (:mod:`dirtyproof.impl.ghost`); it imports nothing from the checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


PROPERTY, RULE, WARNING = "property", "rule", "warning"


@dataclass(frozen=True)
class Violation:
    """An invariant that does not hold: which one, on which page (if any), and why."""

    invariant: str
    message: str
    page: int | None = None

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"

    @property
    def kind(self) -> str:
        """``property``, ``rule`` or ``warning`` (runtime checks are properties)."""
        inv = BY_ID.get(self.invariant)
        return inv.kind if inv is not None else PROPERTY


def _always(w) -> bool:
    return True


@dataclass(frozen=True)
class Invariant:
    """One invariant. ``statement`` is the plain-language text the docs print; ``predicate`` takes
    a world after a step and returns a :class:`Violation` or ``None``; ``when`` says when it is
    meaningful (``step``: after every step; ``completion``: once the migration completed).
    ``kind`` is ``property``, ``rule`` or ``warning`` (a design that cannot do what it means to,
    with no property broken: reported with its schedule, never "unsafe"); a rule is evaluated
    only while ``matters(w)`` holds, which ``matters_when`` states in words."""

    id: str
    title: str
    statement: str
    predicate: Callable[[object], Violation | None]
    when: str = "step"
    designs: str = "all"
    kind: str = PROPERTY
    matters: Callable[[object], bool] = _always
    matters_when: str = "always"

    def evaluate(self, w) -> Violation | None:
        """The predicate, or ``None`` for a rule that cannot matter in ``w``."""
        if self.kind == RULE and not self.matters(w):
            return None
        return self.predicate(w)

    def applies_to(self, design) -> bool:
        """Whether the invariant is checked for ``design`` (designs opt out of what they never claim)."""
        if self.id in design.not_applicable:
            return False
        if self.designs == "background":
            return bool(design.coverage_bitmaps)
        return True


def _bits(bm) -> np.ndarray:
    """A bitmap as a bool array of its ``nbits`` pages."""
    return np.unpackbits(bm.words.view(np.uint8), bitorder="little")[: bm.nbits].astype(bool)


def _owed(w) -> bool:
    """Whether coverage is owed (the world's ghost: this attempt started dirty logging)."""
    return w.coverage_owed()


def marked_pages(w, kvm_bit: bool = True) -> np.ndarray:
    """Per ram_addr page: is the page marked in a layer that leads to it being sent again?

    L1 (KVM will report it), L1c of a slot fetched but not yet OR-ed into L2, L2, ``bmap``, the
    design's coverage bitmaps, and a mark in some actor's hands (taken out of L2 or ``bmap``
    inside its current ``bitmap_mutex`` section: a sync's local carry, a send that has taken the
    page's ``bmap`` bit but not yet read the content, a multifd page queued and not yet read).
    With the dirty ring: a vCPU's buffer, a ring entry not yet collected (a collected one leads
    nowhere: its page is in L1c, the slot bitmap, if QEMU recorded it), and L1 is the backup bitmap.
    ``kvm_bit=False`` leaves out L1 (and the ring's entries): the marks a KVM CLEAR cannot erase
    (it clears only L1 and the L1c bits of its range; an L1c slot copy not yet OR-ed into L2 is
    OR-ed under the same ``slots_lock`` as its GET, before any CLEAR can run)."""
    kvm = w.kvm
    marked = _bits(w.L2)
    if kvm.logging and kvm_bit:
        marked |= _bits(kvm.L1)
        if kvm.ring_mode:
            for p in kvm.ring_pages(collected=False):
                marked[p] = True
    if any(kvm.unsynced):
        l1c = _bits(kvm.L1c)
        for s in w.slots:
            if kvm.unsynced[s.index]:
                marked[s.start:s.end] |= l1c[s.start:s.end]
    for rb in w.blocks:
        seg = marked[rb.offset:rb.offset + rb.pages]
        seg |= _bits(rb.bmap)
        for name in w.design.coverage_bitmaps:
            bm = rb.extra_bitmaps.get(name)
            if bm is not None:
                seg |= _bits(bm)
    for p in w.ghost.held_pages():
        marked[p] = True
    return marked


def guest_mask(w) -> np.ndarray:
    """Pages that belong to a RAMBlock."""
    return w.page_block >= 0


def declared_free(w) -> np.ndarray:
    """Per ram_addr page: did the guest report it free (free-page hinting) and not write it since?
    Such a page holds nothing the guest will read, so it need not reach the destination."""
    free = np.zeros(w.ram_pages, dtype=bool)
    for p in w.ghost.free_and_unwritten(w.src_version):
        free[p] = True
    return free


def check_coverage(w) -> Violation | None:
    """Every page whose latest version has not been read by a send is marked somewhere, unless
    the guest declared it free and has not written it since."""
    if not _owed(w):
        return None
    stale = (w.src_version != w.last_read) & guest_mask(w)
    if not stale.any():
        return None
    lost = stale & ~marked_pages(w)
    if lost.any() and w.ghost.declared_free:
        lost &= ~declared_free(w)
    if lost.any():
        p = int(np.flatnonzero(lost)[0])
        return Violation("coverage", f"{w.page_name(p)} at v{int(w.src_version[p])} (last read "
                         f"v{int(w.last_read[p])}) is marked in no layer", p)
    return None


def check_no_loss(w) -> Violation | None:
    """After completion every page's destination version equals its source version (a page the
    guest declared free and has not written since is exempt)."""
    if not w.migration_done():
        return None
    bad = (w.dest_version != w.src_version) & guest_mask(w)
    if bad.any() and w.ghost.declared_free:
        bad &= ~declared_free(w)
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        got = int(w.dest_version[p])
        return Violation("no-loss", f"{w.page_name(p)}: destination holds "
                         f"{'nothing' if got < 0 else f'v{got}'}, source has v{int(w.src_version[p])}", p)
    return None


def check_landing_order(w) -> Violation | None:
    """No copy of a page lands on the destination after a newer copy of it landed in the same
    attempt (the destination writes whatever arrives, so the older one would overwrite it)."""
    for ev in w.events:
        if ev[0] == "landed" and ev[3] is not None and ev[2] < ev[3]:
            return Violation("landing-order", f"{w.page_name(ev[1])}: v{ev[2]} lands on the destination "
                             f"after v{ev[3]} did, and overwrites it", ev[1])
    return None


def check_wp(w) -> Violation | None:
    """While logging, a page whose L1 bit is clear is write-protected, so its next write is logged
    (with the dirty ring: a page in no vCPU's buffer or ring is write-protected)."""
    kvm = w.kvm
    if not kvm.logging:
        return None
    logged = kvm.L1.words
    if kvm.ring_mode:
        pending = type(kvm.L1)(kvm.L1.nbits)
        for p in kvm.ring_pages():
            pending.set(p)
        logged = pending.words
    bad = kvm.slot_mask.words & ~logged & ~kvm.protected.words
    if bad.any():
        p = int(np.flatnonzero(np.unpackbits(bad.view(np.uint8), bitorder="little"))[0])
        return Violation("wp-unlogged", f"{w.page_name(p)} is writable with its L1 bit clear: "
                         f"its next write would not be logged", p)
    return None


def check_clear_mask(w) -> Violation | None:
    """No KVM CLEAR clears a dirty bit that QEMU has not fetched into L1c."""
    for ev in w.events:
        if ev[0] == "clear" and ev[1].unfetched:
            p = ev[1].unfetched[0]
            return Violation("clear-mask-fetched", f"CLEAR on slot {ev[1].slot} clears {w.page_name(p)}, "
                             f"a dirty bit QEMU never fetched", p)
    return None


def check_clear_before_read(w) -> Violation | None:
    """No page is read for sending while a remote clear owed for it could erase a write made
    after the read: its chunk's ``clear_bmap`` bit is set (the clear is still to come), the
    page's bit is in that clear's mask (L1c: fetched, so with manual protect the page stayed
    writable and a further write sets no new bit), and no mark of the page outlives both the
    read and the clear (L2, ``bmap``, a design coverage bitmap, a hand the read did not consume,
    another queued copy: each leads to a later send that takes the clear before it reads).
    One statement for every reader: the single stream, which reads right after its take, and
    a multifd channel, which reads a queued page later, across syncs."""
    if w.mig is None:
        return None
    outliving = None
    for ev in w.events:
        if ev[0] == "read":
            p = ev[1]
            rb = w.block_of(p)
            chunk = rb.chunk_of(p - rb.offset)
            if not rb.clear_bmap.test(chunk) or not w.kvm.L1c.test(p):
                continue
            if outliving is None:
                outliving = marked_pages(w, kvm_bit=False)
            if not outliving[p]:
                return Violation("clear-before-read", f"{w.page_name(p)} read while the remote clear of "
                                 f"its chunk {chunk} is still owed and would erase a later write "
                                 f"(fetched into L1c, marked nowhere else)", p)
    return None


def check_dirty_pages_count(w) -> Violation | None:
    """When ``bitmap_mutex`` is free, ``migration_dirty_pages`` equals the popcount of ``bmap``."""
    if not _owed(w) or w.lock_owner["bitmap_mutex"] is not None:
        return None
    pop = w.bmap_popcount()
    if w.mig.migration_dirty_pages != pop:
        return Violation("dirty-pages-count", f"migration_dirty_pages = {w.mig.migration_dirty_pages} "
                         f"but bmap holds {pop} page(s)")
    return None


def check_period_counter(w) -> Violation | None:
    """When ``bitmap_mutex`` is free, ``num_dirty_pages_period`` equals the bits the period's syncs newly set in ``bmap``."""
    if not _owed(w) or w.lock_owner["bitmap_mutex"] is not None:
        return None
    truth = w.ghost.period_new_bits
    if w.mig.num_dirty_pages_period != truth:
        return Violation("period-counter", f"num_dirty_pages_period = {w.mig.num_dirty_pages_period} but "
                         f"the period's syncs set {truth} new bmap bit(s)")
    return None


def _bitmaps_initialised(w) -> bool:
    """The design's ``ram_list_init_bitmaps`` returned in this step."""
    return any(ev == ("returned", "ram_list_init_bitmaps") for ev in w.events)


def _vm_can_write(w) -> bool:
    """vCPUs and devices can still write (the VM runs) while dirty logging is on."""
    return w.vm_running and w.kvm.logging


def _remote_clear_can_matter(w) -> bool:
    """The VM can still write, and KVM re-arms pages only on a CLEAR (manual protect): in legacy
    KVM mode QEMU issues no CLEAR at all."""
    return _vm_can_write(w) and w.kvm.manual_protect


def check_bmap_full(w) -> Violation | None:
    """When ``ram_list_init_bitmaps`` returns, ``bmap`` holds every page of every block."""
    for rb in w.blocks:
        if rb.bmap.popcount() != rb.pages:
            missing = next(k for k in range(rb.pages) if not rb.bmap.test(k))
            return Violation("bmap-full-after-setup", f"ram_list_init_bitmaps left {rb.idstr}.bmap without "
                             f"{w.page_name(rb.offset + missing)}", rb.offset + missing)
    return None


def check_background_sync(w) -> Violation | None:
    """A background sync changes neither ``bmap`` nor ``migration_dirty_pages``."""
    for ev in w.events:
        if ev[0] == "sync_end" and ev[1] is not None and ev[1][0]:
            _, words, count = ev[1]
            for rb, before in zip(w.blocks, words):
                if not np.array_equal(rb.bmap.words, before):
                    return Violation("bg-sync-no-bmap", f"a background sync changed {rb.idstr}.bmap")
            if w.mig.migration_dirty_pages != count:
                return Violation("bg-sync-no-bmap", f"a background sync changed migration_dirty_pages "
                                 f"{count} -> {w.mig.migration_dirty_pages}")
    return None


def _ring_events(w, kind: str) -> list:
    """This step's events of ``kind`` (the dirty ring's ``ring_reap`` / ``ring_reset``)."""
    return [ev for ev in w.events if ev[0] == kind]


def check_ring_reset_after_record(w) -> Violation | None:
    """KVM_RESET_DIRTY_RINGS recycles only entries whose pages QEMU has recorded in its slot
    bitmap (L1c) and not yet published: the reset write-protects the page again, so from then on
    only that record says the page is dirty."""
    for ev in _ring_events(w, "ring_reset"):
        for p, recorded in ev[1]:
            if not recorded:
                return Violation("ring-reset-after-record", f"KVM_RESET_DIRTY_RINGS recycles the entry of "
                                 f"{w.page_name(p)}, which is not in its slot's dirty bitmap (not recorded, "
                                 f"or already published)", p)
    return None


def _ring_reset_can_matter(w) -> bool:
    """Coverage is owed and this step reset ring entries (dirty ring worlds only: the first test
    keeps the rule free in every other world)."""
    return w.kvm.ring_mode and bool(_ring_events(w, "ring_reset")) and w.coverage_owed()


def check_ring_kick_before_reap(w) -> Violation | None:
    """A log sync's reap comes after that log sync kicked every vCPU (a page still in a vCPU's
    hardware buffer is not in its ring: the sync would miss a write made before it began)."""
    for ev in _ring_events(w, "ring_reap"):
        _, cpu, _, in_sync, kicked, buffered = ev
        if in_sync and not kicked and buffered:
            return Violation("ring-kick-before-reap", f"kvm_log_sync_global reaps vcpu{cpu}'s ring without "
                             f"kicking the vCPUs first: {w.page_name(buffered[0])} is still in a vCPU's buffer",
                             buffered[0])
    return None


def _ring_reap_can_matter(w) -> bool:
    """A log sync reaps a ring while some vCPU's buffer holds a page."""
    return w.kvm.ring_mode and any(ev[3] and ev[5] for ev in _ring_events(w, "ring_reap"))


def check_ring_backup_at_last_stage(w) -> Violation | None:
    """With the backup bitmap (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP), the last stage's log sync
    collects it: when that sync takes ``bitmap_mutex``, the backup bitmap (L1) is empty."""
    if any(ev[0] == "sync_mutex" and ev[1] for ev in w.events) and w.kvm.L1.any():
        p = w.kvm.L1.find_next(0, w.kvm.L1.nbits)
        return Violation("ring-backup-at-last-stage", f"the last stage's sync leaves {w.page_name(p)} in KVM's "
                         f"backup bitmap: a write made without a vCPU is never collected", p)
    return None


def _ring_backup_can_matter(w) -> bool:
    """Dirty ring with the backup bitmap, dirty logging on."""
    return w.kvm.with_bitmap and w.kvm.logging


from .lifecycle import check_helper_idle, check_memory_safety, check_thread_lifetime  # noqa: E402

INVARIANTS: tuple[Invariant, ...] = (
    Invariant("no-loss", "End-to-end: no lost page",
              "After completion, for every page, the version the destination holds equals the "
              "source's version at the stop: no write the guest made is missing on the destination. "
              "With free-page hinting, a page the guest reported free and has not written since "
              "is exempt (its content is garbage to the guest); a write after the report makes it owed.",
              check_no_loss, when="completion"),
    Invariant("coverage", "Per-step coverage",
              "At every step of a migration that has started dirty logging and is not being "
              "cancelled, every page whose latest "
              "version has not been read by a send is marked in some layer that leads to its being "
              "sent again (L1, an un-synced L1c, L2, bmap, a design bitmap that counts toward "
              "coverage; with KVM's dirty ring also a vCPU's buffer, a ring entry not yet collected "
              "and the backup bitmap, which is L1 there), or is in an actor's hands: taken out of L2 or bmap by an actor inside its "
              "current bitmap_mutex section, sync or page send (a sync's local carry, a send that has taken "
              "the page's bmap bit and not yet read it). Hands are emptied when the actor leaves both, "
              "so a mark dropped there breaks coverage when it leaves. It is "
              "the inductive strengthening of no-loss: a violation is extended to completion to show "
              "the lost write. Pages the guest reported free (free-page hinting) and has not written since "
              "are exempt, as for no-loss.",
              check_coverage),
    Invariant("landing-order", "No older copy lands after a newer one",
              "Within one migration attempt, no copy of a page reaches the destination after a newer "
              "copy (a higher version) of the same page did. The destination writes whatever "
              "arrives into guest RAM, in arrival order; with multifd, copies of a page travel on "
              "different channels, and only the per-round flush (each page is taken at most once "
              "per round, and a round's channels drain before the next round's pages go out) "
              "keeps an older copy from overwriting a newer one.",
              check_landing_order),
    Invariant("wp-unlogged", "Write protection of unlogged pages",
              "While dirty logging is on, a page whose L1 bit is clear is write-protected, so the next "
              "guest write to it faults and is logged.",
              check_wp, kind=RULE, matters=_vm_can_write,
              matters_when="while the VM runs with dirty logging on (a stopped guest writes nothing)"),
    Invariant("clear-mask-fetched", "CLEAR masks within fetched bits",
              "No KVM_CLEAR_DIRTY_LOG clears a dirty bit that QEMU has not fetched into its slot copy "
              "(L1c): clearing a dirty bit it never saw would throw a dirty page away.",
              check_clear_mask, kind=RULE),
    Invariant("clear-before-read", "Clear before read",
              "A page's content is read for sending only after the owed remote clear of its "
              "clear_bmap chunk has been taken; otherwise a write between the read and the clear is "
              "never logged. Stated for every reader: a read is flagged when a clear owed for its "
              "page at read time could erase a write made after the read, that is, the page's "
              "chunk still owes its clear, the page's bit is in that clear's mask (fetched into "
              "L1c: with manual protect the page stayed writable, so a further write sets no new "
              "bit), and no mark of the page outlives the read and the clear (L2, bmap, a design "
              "coverage bitmap, a hand the read did not consume, another queued copy), any of "
              "which leads to a later send that takes the clear before it reads. A multifd "
              "channel's late read across a sync needs no exemption of its own.",
              check_clear_before_read, kind=RULE, matters=_remote_clear_can_matter,
              matters_when="while the VM runs with dirty logging on, in a KVM mode with manual "
                           "protect: once the guest is stopped no write can fall between the read "
                           "and the clear (QEMU 10.1 skips the last stage's remote clears for this "
                           "reason), and in legacy KVM mode QEMU issues no CLEAR"),
    Invariant("dirty-pages-count", "migration_dirty_pages is the popcount of bmap",
              "Whenever bitmap_mutex is free, migration_dirty_pages equals the number of set bits "
              "of bmap over every block's pages.",
              check_dirty_pages_count),
    Invariant("period-counter", "The period counter counts new bits",
              "Whenever bitmap_mutex is free, num_dirty_pages_period equals the number of bmap bits "
              "newly set by the syncs of the current rate period (what the throttle decides on).",
              check_period_counter),
    Invariant("bmap-full-after-setup", "bmap covers every page after setup",
              "When ram_list_init_bitmaps returns, bmap holds every page of every block, so a new "
              "migration (also one after a cancel) sends every page at least once.",
              check_bmap_full, kind=RULE, matters=_bitmaps_initialised,
              matters_when="at the step in which the design's ram_list_init_bitmaps returns (QEMU "
                           "sets every bmap bit there; a design that fills bmap elsewhere is told so "
                           "by this rule, and judged by coverage)"),
    Invariant("bg-sync-no-bmap", "A background sync leaves bmap alone",
              "A background sync (the seed series' MODERN_BACKGROUND flavour) changes neither bmap "
              "nor migration_dirty_pages: it only feeds the throttle and iter_bmap.",
              check_background_sync, designs="background", kind=RULE,
              matters_when="at the end of each background sync"),
    Invariant("ring-reset-after-record", "Dirty ring: reset only what is recorded",
              "With the dirty ring, KVM_RESET_DIRTY_RINGS recycles only entries whose pages QEMU has "
              "already marked in its slot bitmap (KVMSlot.dirty_bmap) and not yet published into L2: "
              "the reset write-protects the page again and a later write pushes a new entry, so "
              "between the reset and the next send only that mark says the page is dirty (QEMU's "
              "kvm_dirty_ring_reap marks every entry, then resets, all under slots_lock, before "
              "kvm_log_sync_global publishes).",
              check_ring_reset_after_record, kind=RULE, matters=_ring_reset_can_matter,
              matters_when="at a KVM_RESET_DIRTY_RINGS while coverage is owed"),
    Invariant("ring-kick-before-reap", "Dirty ring: kick before the sync's reap",
              "With the dirty ring, kvm_log_sync_global kicks every vCPU out of KVM_RUN "
              "(kvm_cpu_synchronize_kick_all) before it reaps the rings, so that what the vCPUs' "
              "hardware buffers hold has reached the rings and the sync collects every write made "
              "before it began.",
              check_ring_kick_before_reap, kind=RULE, matters=_ring_reap_can_matter,
              matters_when="at a log sync's reap while some vCPU's buffer holds a page (an empty "
                           "buffer leaves nothing for the kick to flush)"),
    Invariant("ring-backup-at-last-stage", "Dirty ring: the backup bitmap at the last stage",
              "With the dirty ring and KVM's backup bitmap (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP), "
              "the last stage's log sync collects the backup bitmap (KVM_GET_DIRTY_LOG per slot, "
              "QEMU b20cc77692): writes KVM made without a running vCPU are only there.",
              check_ring_backup_at_last_stage, kind=RULE, matters=_ring_backup_can_matter,
              matters_when="in dirty ring worlds with the backup bitmap, when the last stage's sync "
                           "takes bitmap_mutex (its log sync is over)"),
    Invariant("memory-safety", "No access to freed migration state",
              "No thread reads or writes migration state that the cleanup freed: after "
              "qemu_savevm_state_cleanup -> ram_save_cleanup freed every block's bmap and clear_bmap "
              "(and a design's bitmaps beside them) and the RAMState with its bitmap_mutex "
              "(ram_state = NULL), until a new attempt allocates them again. The world poisons the "
              "freed objects and records every access design code makes to them; freeing them while "
              "a thread holds bitmap_mutex is a violation too.",
              check_memory_safety),
    Invariant("thread-lifetime", "No thread outlives its attempt",
              "Every thread a migration attempt starts (the design's timers and helper threads) is "
              "over when the attempt's cleanup ends (the migration thread exits after "
              "migrate_fd_cleanup); in particular no thread of one attempt runs into the next, and "
              "a thread is never started while its previous instance still runs.",
              check_thread_lifetime),
    Invariant("helper-idle", "A helper thread that never does its job",
              "A helper thread (a timer, a watcher) that exits before its attempt's iterations begin "
              "(the state still SETUP or WAIT_UNPLUG) having done nothing, so it cannot do its job "
              "for the rest of the attempt. No write is lost by it: reported as a warning with the "
              "schedule that shows it.",
              check_helper_idle, kind=WARNING),
)

# Properties raised by the world or the scheduler rather than checked on state.
RUNTIME_CHECKS = {
    "lock-order": "Locks are taken in the order BQL -> bitmap_mutex -> slots_lock (with free-page "
                  "hinting, the balloon's free_page_lock between the BQL and bitmap_mutex), never twice, "
                  "and released by their holder.",
    "progress": "A migration that is switched over completes: no deadlock, no endless loop.",
    "send-integrity": "The destination receives only what a send read: a delivered page carries "
                      "the version its send read.",
}

BY_ID = {inv.id: inv for inv in INVARIANTS}


def applicable(design) -> tuple[Invariant, ...]:
    """The invariants (properties and rules) checked for ``design``."""
    return tuple(inv for inv in INVARIANTS if inv.applies_to(design))


def check_step(w, invariants=None) -> Violation | None:
    """The first of ``invariants`` (default: all that apply to the world's design) violated after
    a step, properties and rules alike (a rule only where it can matter; warnings are left to
    :class:`dirtyproof.spec.checker.Checker`, which also tells the two kinds apart)."""
    for inv in invariants if invariants is not None else applicable(w.design):
        if inv.kind == WARNING:
            continue
        v = inv.evaluate(w)
        if v is not None:
            return v
    return None
