"""QEMU's ordering rules matter: deliberately broken variants of the legacy design, each with the
exact schedule that makes it lose a page, and the invariants that reject it.

(a) clear-before-read: ``migration_bitmap_clear_dirty`` must do the owed remote clear of the
    page's chunk *before* the page is read; a write between a read and a later clear is never
    logged (manual-protect KVM mode).
(b) atomic fetch-and-clear: the fast-path sync must take an L2 word with one ``atomic_xchg``; a
    read in one step and a store of zero in a later step drops a device write landing between.

The correct design passes the same schedule.
"""
from dirtyproof.impl import BlockSpec, Config, Geometry, World
from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import Legacy
from dirtyproof.checked import run
from dirtyproof.spec import INVARIANTS

GEO = Geometry((BlockSpec("ram0", 0, 64),), clear_bmap_shift=2)   # one fast-path block, one slot


def M(n):
    """``n`` steps of the migration thread."""
    return [["migration", None]] * n


def excluding(*ids):
    """Every invariant except those named."""
    return [inv for inv in INVARIANTS if inv.id not in ids]


def to_completion(w, prefix):
    """The exact ``prefix``, then switchover and the migration thread to its end."""
    yield from prefix
    if w.mig.phase == "active" and not w.mig.downtime_raised:
        yield ["mgmt", "switchover"]
    while w.migration_active():
        yield ["migration", None]


# ---------------------------------------------------------------------------------------------
# (a) clear-before-read
class ReadBeforeClear(Legacy):
    """BROKEN: takes the ``bmap`` bit and reads the page, and only then does the owed chunk clear."""

    name = "broken-read-before-clear"

    def migration_bitmap_clear_dirty(self, w, rb, page):
        """bmap test-and-clear (step), read the content (step), then the owed clear (steps)."""
        mig, addr = w.mig, rb.offset + page
        ret = rb.bmap.test_and_clear(page)
        if ret:
            mig.migration_dirty_pages -= 1
        yield f"{rb.idstr}: bmap test-and-clear page {addr}"
        if ret:
            self.version_read = w.read_page(addr)
            yield f"read page {addr} (v{self.version_read}) before the owed clear"
        yield from self.migration_clear_memory_region_dirty_bitmap(w, rb, page)
        return ret

    def ram_save_page(self, w, rb, page):
        """The content was read already: only deliver it."""
        addr = rb.offset + page
        w.deliver(addr, self.version_read)
        yield f"deliver page {addr} v{self.version_read}"


def world_a(design):
    """Manual KVM mode, no exact sync, bursts of 8 pages."""
    return World(Config(geometry=GEO, kvm_mode="manual", switchover_pages=0, burst=8), design)


SCHEDULE_A = (
    [["mgmt", "start"]]
    + M(1)                      # 0+1  ram_init_bitmaps: dirty logging on, page 0 write-protected
    + [["vcpu0", 0]]            # 2    v1: fault, L1 bit 0 set, page 0 writable from now on
    + M(6)                      # 3-8  GET (L1c = {0}), OR, xchg, clear_bmap all set, sync done, setup done
    + M(2)                      # 9,10 broken: bmap test-and-clear, READ v1  | correct: chunk taken, CLEAR
    + [["vcpu0", 0]]            # 11   v2: no fault (page writable), L1 bit 0 still set
    + M(2)                      # 12,13 broken: chunk taken, CLEAR (L1 bit 0 gone) | correct: bmap, read v2
)
READ_STEP_A, CLEAR_STEP_A = 10, 13


def test_a_schedule_does_what_it_says():
    w = world_a(ReadBeforeClear)
    res = run(w, SCHEDULE_A, check=False)
    labels = [r.label for r in res.log]
    assert labels[READ_STEP_A] == "read page 0 (v1) before the owed clear"
    assert labels[11] == "write page 0 -> v2"
    assert labels[12] == "ram0: clear_bmap chunk 0 taken"
    assert labels[CLEAR_STEP_A] == "KVM_CLEAR_DIRTY_LOG slot 0 pages [0, 4)"
    assert not w.kvm.L1.test(0) and w.kvm.protected.test(0) and w.src_version[0] == 2


def test_a_clear_before_read_rejects_the_broken_variant_at_the_read():
    res = run(world_a(ReadBeforeClear), SCHEDULE_A, extend=True)
    first = res.rule_violations[0]
    assert first.rule == "clear-before-read"
    assert first.step == READ_STEP_A and first.violation.page == 0
    # a rule is not a verdict: the run goes on to the property the rule protects, and drives on
    # to completion to show the write that is lost
    assert res.violation.invariant == "coverage" and res.violation_step == CLEAR_STEP_A
    assert res.lost_write is not None and res.lost_write.invariant == "no-loss"
    assert res.lost_write.page == 0 and "destination holds v1, source has v2" in res.lost_write.message


def test_a_coverage_catches_the_lost_write_at_the_clear():
    res = run(world_a(ReadBeforeClear), SCHEDULE_A, invariants=excluding("clear-before-read"))
    assert res.violation.invariant == "coverage"
    assert res.violation_step == CLEAR_STEP_A and res.violation.page == 0
    assert "at v2 (last read v1) is marked in no layer" in res.violation.message


def test_a_no_loss_catches_it_at_completion():
    w = world_a(ReadBeforeClear)
    res = run(w, to_completion(w, SCHEDULE_A), invariants=excluding("clear-before-read", "coverage"))
    assert res.completed
    assert res.violation.invariant == "no-loss" and res.violation.page == 0
    assert w.dest_version[0] == 1 and w.src_version[0] == 2


def test_a_correct_design_passes_the_same_schedule():
    w = world_a(Legacy)
    res = run(w, to_completion(w, SCHEDULE_A))
    assert res.ok and res.completed
    labels = [r.label for r in res.log]
    assert labels[9:11] == ["ram0: clear_bmap chunk 0 taken", "KVM_CLEAR_DIRTY_LOG slot 0 pages [0, 4)"]
    assert labels[11] == "write page 0 -> v2 (fault: L1 set)"     # re-armed by the clear
    assert labels[13] == "read page 0 (v2)"
    assert w.dest_version[0] == 2


def test_a_broken_variant_is_clean_without_the_interleaved_write():
    """The loss needs the write between read and clear: the invariants are not just noisy."""
    w = world_a(ReadBeforeClear)
    schedule = [c for i, c in enumerate(SCHEDULE_A) if i != 11]
    res = run(w, to_completion(w, schedule), invariants=excluding("clear-before-read"))
    assert res.ok and res.completed


# ---------------------------------------------------------------------------------------------
# (b) atomic fetch-and-clear
class SplitFetchAndClear(Legacy):
    """BROKEN: the fast path reads an L2 word in one step and stores zero in a later one."""

    name = "broken-split-xchg"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb):
        """Like the base fast path, with ``atomic_xchg`` split into a load and a store."""
        if not rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty, base = 0, rb.offset >> 6
        for k in range(rb.words()):
            bits = w.L2.word(base + k)
            if bits:
                yield f"{rb.idstr}: load L2 word {base + k}"
                w.L2.set_word(base + k, 0)
                old = rb.bmap.word(k)
                num_dirty += (bits & ~old & WORD_MASK).bit_count()
                rb.bmap.set_word(k, old | bits)
                yield f"{rb.idstr}: store 0 to L2 word {base + k}, loaded bits into bmap word {k}"
        rb.clear_bmap.fill(True)
        yield f"{rb.idstr}: clear_bmap all set (remote clear owed)"
        return num_dirty


def world_b(design):
    # switchover_pages 60: after one burst of 8, 56 pages pending -> the exact sync runs while
    # the VM is running; the 5 re-dirtied pages push it back above 60, so no switchover.
    """Manual KVM mode, bursts of 8, switchover below 61 pending pages."""
    return World(Config(geometry=GEO, kvm_mode="manual", switchover_pages=60, burst=8), design)


SCHEDULE_B = (
    [["mgmt", "start"]]
    + M(8)                      # 1-8   setup: init, GET, OR, load, store (L2 was all set), clear_bmap set,
                                #       sync done, setup done
    + M(29)                     # 9-37  one burst: pages 0..7 sent (two chunk clears), mutex released
    + [["vcpu0", p] for p in range(1, 6)]   # 38-42 pages 1..5 re-dirtied (faults: L1)
    + M(3)                      # 43-45 exact sync: GET, OR, load L2 word 0 (= pages 1..5)
    + [["device", 6]]           # 46    device DMA to page 6 (sent already): L2 bit 6 set
    + M(1)                      # 47    store 0 to L2 word 0: bit 6 is gone, in no layer
)
LOAD_STEP_B, DEVICE_STEP_B, STORE_STEP_B = 45, 46, 47


def test_b_schedule_does_what_it_says():
    w = world_b(SplitFetchAndClear)
    res = run(w, SCHEDULE_B, check=False)
    labels = [r.label for r in res.log]
    assert labels[37] == "ram_save_iterate: 8 page(s), bitmap_mutex released"
    assert labels[43] == "KVM_GET_DIRTY_LOG slot 0"
    assert labels[LOAD_STEP_B] == "ram0: load L2 word 0"
    assert labels[DEVICE_STEP_B] == "device writes page 6 -> v1, L2 set"
    assert labels[STORE_STEP_B].startswith("ram0: store 0 to L2 word 0")
    assert w.blocks[0].bmap.word(0) == 0b111110 | (WORD_MASK << 8 & WORD_MASK)
    assert not w.L2.test(6) and w.mig.phase == "active"


def test_b_coverage_catches_the_dropped_device_write():
    # The store that wipes bit 6 happens inside the sync, where a bit taken out of L2 may
    # legitimately live in the sync's locals (the world counts it in the sync's hands); the
    # sync drops it for good when it returns, and coverage breaks at that step.
    w = world_b(SplitFetchAndClear)
    res = run(w, to_completion(w, SCHEDULE_B), extend=True)
    assert res.violation.invariant == "coverage" and res.violation.page == 6
    assert res.violation_step > STORE_STEP_B
    done = next(i for i, r in enumerate(res.log) if i > STORE_STEP_B and r.choice[0] == "migration"
                and r.label == "migration_bitmap_sync done, bitmap_mutex released")
    after = next(i for i, r in enumerate(res.log) if i > done and r.choice[0] == "migration")
    assert res.violation_step == after      # the migration thread's first step out of the sync
    assert res.lost_write is not None and res.lost_write.page == 6


def test_b_no_loss_catches_it_at_completion():
    w = world_b(SplitFetchAndClear)
    res = run(w, to_completion(w, SCHEDULE_B), invariants=excluding("coverage"))
    assert res.completed
    assert res.violation.invariant == "no-loss" and res.violation.page == 6
    assert w.dest_version[6] == 0 and w.src_version[6] == 1


def test_b_correct_design_passes_the_same_schedule():
    w = world_b(Legacy)
    res = run(w, to_completion(w, SCHEDULE_B))
    assert res.ok and res.completed and w.dest_version[6] == 1


def test_b_correct_design_keeps_the_write_landing_right_after_the_xchg():
    """The correct fast path takes a step less at setup (one xchg, not load + store); with
    that step removed the device write lands at the same point of the exact sync."""
    schedule = SCHEDULE_B[:1] + SCHEDULE_B[2:]
    w = world_b(Legacy)
    res = run(w, to_completion(w, schedule))
    assert res.ok and res.completed
    labels = [r.label for r in res.log]
    assert labels[LOAD_STEP_B - 1] == "ram0: xchg L2 word 0 into bmap word 0"
    assert labels[DEVICE_STEP_B - 1] == "device writes page 6 -> v1, L2 set"
    assert labels[STORE_STEP_B - 1] == "ram0: clear_bmap all set (remote clear owed)"
    assert w.dest_version[6] == 1


def test_b_broken_variant_is_clean_without_the_interleaved_write():
    w = world_b(SplitFetchAndClear)
    schedule = [c for i, c in enumerate(SCHEDULE_B) if i != DEVICE_STEP_B]
    res = run(w, to_completion(w, schedule))
    assert res.ok and res.completed
