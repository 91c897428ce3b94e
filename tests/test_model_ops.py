"""Unit tests of the world's operations, one atomic step at a time, on hand-worked examples.

Threads are driven with explicit choices. Design operations that are not a thread of their own
(one block's L2 -> L3 sync, a timer tick...) run inside a *probe* thread spawned for the test, so
they take their atomic steps through the world exactly as in a run.
"""
import numpy as np
import pytest

from dirtyproof.impl import BadChoice, BlockSpec, Config, Geometry, World
from dirtyproof.impl.bitmap import WORD_MASK
from dirtyproof.impl.designs import BackgroundV1, Legacy, Periodic
from dirtyproof.impl.designs.background_v1 import (LEGACY_ITER, MODERN_BACKGROUND, MODERN_ITER,
                                                   RAMBLOCK_SYN_LEGACY, RAMBLOCK_SYN_MODERN)
from dirtyproof.checked import run

# block a: ram_addr [0, 128), two words, fast path, memslot 0
# block b: ram_addr [133, 143), slow path, memslot 1; chunks of 4 pages: [0,4) [4,8) [8,10)
GEO = Geometry((BlockSpec("a", 0, 128), BlockSpec("b", 133, 10)), clear_bmap_shift=2)
TOTAL = 138


def world(design=Legacy, mode="manual", **kw):
    """A fresh world on ``GEO`` (no exact sync unless asked: ``switchover_pages`` 0)."""
    kw.setdefault("switchover_pages", 0)
    kw.setdefault("burst", 2)
    return World(Config(geometry=GEO, kvm_mode=mode, **kw), design)


def step_until(w, actor, text, limit=2000):
    """Step ``actor`` until a step's label contains ``text``; return the labels of those steps."""
    labels = []
    for _ in range(limit):
        labels.append(w.step([actor, None]))
        if text in labels[-1]:
            return labels
    raise AssertionError(f"{actor} never reached {text!r}; last labels {labels[-5:]}")


def after_setup(design=Legacy, mode="manual", **kw):
    """A world whose first migration finished setup (bmap all set, first sync done)."""
    w = world(design, mode, **kw)
    w.step(["mgmt", "start"])
    step_until(w, "migration", "setup done")
    return w


def probe(w, gen, bql=False, mutex=False):
    """Spawn thread ``probe`` running generator ``gen`` (optionally under the BQL, and then
    ``bitmap_mutex``, as a sync's body runs); returns a list that receives the generator's return
    value when the thread exits."""
    out = []

    def body():
        """The probe thread's body."""
        if bql:
            yield from w.acquire("BQL")
        if mutex:
            yield from w.acquire("bitmap_mutex")
        out.append((yield from gen))
        if mutex:
            w.release("bitmap_mutex")
        if bql:
            w.release("BQL")
    w.spawn("probe", body())
    return out


def drain(w, actor="probe"):
    """Step ``actor`` until it exits; return the labels."""
    return step_until(w, actor, "exits")


def finish(w):
    """Switch over and run the migration thread to its end with every invariant checked."""
    def choices():
        """Switchover (if not yet), then migration steps while the thread runs."""
        if not w.mig.downtime_raised and w.mig.phase == "active":
            yield ["mgmt", "switchover"]
        while w.migration_active():
            yield ["migration", None]
    res = run(w, choices())
    assert res.ok, res.violation
    return res


# ---------------------------------------------------------------------------------------------
# the world at rest
def test_ramblock_creation_marks_every_page_dirty_in_l2():
    w = world()
    assert w.L2.to_list() == list(range(128)) + list(range(133, 143))
    assert w.guest_pages == w.L2.to_list()


@pytest.mark.parametrize("choice, problem", [
    (["vcpu0", 130], "page 130 is in no RAMBlock"),
    (["vcpu0", 143], "out of range"),
    (["device", -1], "out of range"),
    (["vcpu0", True], "out of range"),
    (["clock", 0], "positive number of ms"),
    (["mgmt", "cancel"], "nothing to cancel"),
    (["mgmt", "switchover"], "no running migration"),
    (["mgmt", "reboot"], "unknown management command"),
    (["migration", None], "cannot step now"),
    (["vcpu0"], r"\[actor, argument\]"),
])
def test_bad_choices_are_refused(choice, problem):
    with pytest.raises(BadChoice, match=problem):
        world().step(choice)


def test_writes_bump_versions_and_device_writes_set_l2():
    w = world()
    w.L2.fill(False)
    w.step(["vcpu0", 3])
    w.step(["vcpu1", 3])
    w.step(["device", 134])
    assert w.src_version[3] == 2 and w.src_version[134] == 1
    assert w.L2.to_list() == [134]      # logging is off: the vCPU writes set nothing
    assert not w.kvm.L1.any()


def test_start_twice_is_refused():
    w = world()
    w.step(["mgmt", "start"])
    with pytest.raises(BadChoice, match="already running"):
        w.step(["mgmt", "start"])


# ---------------------------------------------------------------------------------------------
# setup
def test_setup_sets_bmap_starts_logging_and_syncs_once():
    w = world()
    w.step(["mgmt", "start"])
    assert w.step(["migration", None]).startswith("ram_init_bitmaps")
    assert all(rb.bmap.popcount() == rb.pages for rb in w.blocks)
    assert not any(rb.clear_bmap.any() for rb in w.blocks)
    assert w.kvm.logging and w.mig.migration_dirty_pages == TOTAL and w.mig.dirty_sync_count == 0
    labels = step_until(w, "migration", "setup done")
    assert labels[:2] == ["KVM_GET_DIRTY_LOG slot 0", "slot 0: L1c OR-ed into L2"]
    assert w.mig.dirty_sync_count == 1 and w.mig.phase == "active"
    assert not w.L2.any()                               # the creation bits moved to bmap
    assert w.blocks[0].clear_bmap.popcount() == 32      # fast path: every chunk's clear owed
    assert not w.blocks[1].clear_bmap.any()             # slow path cleared page by page
    assert w.mig.migration_dirty_pages == TOTAL and w.lock_owner["BQL"] is None


def test_log_sync_gets_then_ors_each_slot_under_slots_lock():
    w = after_setup()
    w.step(["vcpu0", 5])
    w.step(["vcpu0", 140])
    probe(w, w.design.memory_global_dirty_log_sync(w))
    assert w.step(["probe", None]) == "KVM_GET_DIRTY_LOG slot 0"
    assert w.lock_owner["slots_lock"] == "probe"
    assert w.kvm.L1c.to_list() == [5]                   # slot 1 not fetched yet
    assert w.kvm.unsynced[0] and not w.L2.any()         # fetched, not yet in L2
    assert w.step(["probe", None]) == "slot 0: L1c OR-ed into L2"
    assert w.L2.to_list() == [5] and not w.kvm.unsynced[0] and w.lock_owner["slots_lock"] is None
    drain(w)
    assert w.L2.to_list() == [5, 140]
    assert w.kvm.L1.to_list() == [5, 140]               # manual mode: GET clears nothing


# ---------------------------------------------------------------------------------------------
# L2 -> L3 sync
def test_fast_path_xchg_word_counts_new_bits_then_owes_every_clear():
    w = after_setup()
    a = w.blocks[0]
    a.bmap.set_word(0, 0b0011)
    a.bmap.set_word(1, 0)
    a.clear_bmap.fill(False)
    w.L2.set_word(0, 0b0110)                            # page 2 is new, page 1 already in bmap
    w.L2.set(134)                                       # block b: must stay untouched
    out = probe(w, w.design.cpu_physical_memory_sync_dirty_bitmap(w, a))
    assert w.step(["probe", None]) == "a: xchg L2 word 0 into bmap word 0"
    assert w.L2.word(0) == 0 and a.bmap.word(0) == 0b0111
    assert not a.clear_bmap.any()
    # L2 word 1 is zero: no xchg step for it
    assert w.step(["probe", None]) == "a: clear_bmap all set (remote clear owed)"
    assert a.clear_bmap.popcount() == 32
    drain(w)
    assert out == [1]
    assert w.L2.to_list() == [134]


def test_fast_path_full_word_and_block_counters():
    w = after_setup()
    a = w.blocks[0]
    a.bmap.fill(False)
    w.mig.migration_dirty_pages = w.blocks[1].bmap.popcount()
    period = w.mig.num_dirty_pages_period
    w.L2.set_word(1, WORD_MASK)
    out = probe(w, w.design.ramblock_sync_dirty_bitmap(w, a))
    labels = drain(w)
    assert labels[0] == "a: xchg L2 word 1 into bmap word 1"
    assert out == [None] and a.bmap.word(1) == WORD_MASK
    assert w.mig.migration_dirty_pages == 64 + 10
    assert w.mig.num_dirty_pages_period == period + 64


def test_slow_path_page_by_page_with_remote_clear_and_carry():
    w = after_setup(mode="manual")
    b = w.blocks[1]
    b.bmap.fill(False)
    b.bmap.set(2)                                       # page 135 already in bmap
    w.L2.set(134)
    w.L2.set(135)
    for p in (134, 136):                                # written and fetched by a GET
        w.kvm.protected.clear(p)
        w.kvm.L1.set(p)
        w.kvm.L1c.set(p)
    out = probe(w, w.design.cpu_physical_memory_sync_dirty_bitmap(w, b), mutex=True)
    hands = lambda: w.ghost.hands["probe"].fetched  # noqa: E731 - what the sync holds in locals
    # page 133: nothing in L2 nor L1c, no step
    assert w.step(["probe", None]) == "b: test-and-clear L2 page 134 (dirty)"
    assert not w.L2.test(134) and hands() == {134} and not b.bmap.test(1)
    assert w.step(["probe", None]) == "KVM_CLEAR_DIRTY_LOG slot 1 pages [134, 135)"
    assert not w.kvm.L1.test(134) and w.kvm.protected.test(134) and not w.kvm.L1c.test(134)
    assert hands() == {134} and not b.bmap.test(1)    # only in the sync's hands
    assert w.step(["probe", None]) == "b: test-and-clear L2 page 135 (dirty)"
    assert b.bmap.test(1) and hands() == {134, 135}   # hands last until the mutex is released
    assert w.step(["probe", None]) == "KVM_CLEAR_DIRTY_LOG slot 1 pages [135, 136)"
    # page 136: L2 clean, but its fetched L1c bit makes the remote clear happen anyway
    assert w.step(["probe", None]) == "b: test-and-clear L2 page 136 (clean)"
    assert hands() == {134, 135}
    assert w.step(["probe", None]) == "KVM_CLEAR_DIRTY_LOG slot 1 pages [136, 137)"
    assert not w.kvm.L1.test(136) and w.kvm.protected.test(136)
    assert w.step(["probe", None]) == "exits"
    assert "probe" not in w.ghost.hands               # released bitmap_mutex: hands emptied
    assert out == [1]                                   # 134 is new; 135 was already set
    assert b.bmap.to_list() == [1, 2] and not b.clear_bmap.any()


def test_slow_path_in_legacy_kvm_mode_has_no_clear_ioctl():
    w = after_setup(mode="legacy")
    b = w.blocks[1]
    b.bmap.fill(False)
    w.L2.set(134)
    w.L2.set(140)
    out = probe(w, w.design.cpu_physical_memory_sync_dirty_bitmap(w, b))
    assert drain(w) == ["b: test-and-clear L2 page 134 (dirty)",
                        "b: test-and-clear L2 page 140 (dirty)", "exits"]
    assert out == [2] and b.bmap.to_list() == [1, 7]


# ---------------------------------------------------------------------------------------------
# sending
def test_owed_chunk_clear_happens_before_the_read():
    w = after_setup(mode="manual")
    a = w.blocks[0]
    w.step(["vcpu0", 1])
    w.step(["vcpu0", 6])
    w.kvm.get_dirty_log(w.slots[0])                     # L1c = {1, 6}
    w.step(["vcpu0", 2])                                # written after the GET
    assert w.kvm.L1.to_list() == [1, 2, 6]
    assert w.step(["migration", None]) == "a: clear_bmap chunk 0 taken"
    assert not a.clear_bmap.test(0) and w.kvm.L1.to_list() == [1, 2, 6]
    assert w.step(["migration", None]) == "KVM_CLEAR_DIRTY_LOG slot 0 pages [0, 4)"
    assert w.kvm.L1.to_list() == [2, 6]                 # 2 was never fetched: kept
    assert w.kvm.L1c.to_list() == [6] and w.kvm.protected.test(1)
    assert w.step(["migration", None]) == "a: bmap test-and-clear page 0 (was set)"
    assert w.mig.migration_dirty_pages == TOTAL - 1 and w.ghost.hands["migration"].taken == {0}
    assert w.step(["migration", None]) == "read page 0 (v0)"
    assert w.last_read[0] == 0 and w.ghost.in_flight == {0: [0]}
    assert not w.ghost.hands["migration"].taken
    assert w.step(["migration", None]) == "deliver page 0 v0"
    assert w.dest_version[0] == 0 and w.ghost.in_flight == {}
    # page 1, same chunk: no second clear
    assert w.step(["migration", None]) == "a: bmap test-and-clear page 1 (was set)"
    assert w.step(["migration", None]) == "read page 1 (v1)"


def test_owed_chunk_clear_is_cut_at_the_block_end():
    w = after_setup(mode="manual")
    a, b = w.blocks
    a.bmap.fill(False)
    a.clear_bmap.fill(False)
    b.bmap.fill(False)
    b.bmap.set(8)
    b.clear_bmap.set(2)                                 # chunk [8, 12) of a 10-page block
    w.mig.migration_dirty_pages = 1
    for p in (141, 142):
        w.kvm.protected.clear(p)
        w.kvm.L1.set(p)
        w.kvm.L1c.set(p)
    assert w.step(["migration", None]) == "b: clear_bmap chunk 2 taken"
    assert w.step(["migration", None]) == "KVM_CLEAR_DIRTY_LOG slot 1 pages [141, 143)"
    assert not w.kvm.L1.any() and w.kvm.protected.test(142)
    assert w.step(["migration", None]) == "b: bmap test-and-clear page 141 (was set)"


def test_legacy_kvm_mode_takes_the_chunk_bit_without_ioctl():
    w = after_setup(mode="legacy")
    assert w.step(["migration", None]) == "a: clear_bmap chunk 0 taken"
    assert w.step(["migration", None]) == "a: bmap test-and-clear page 0 (was set)"


def test_find_dirty_page_wraps_around_blocks():
    w = after_setup()
    a, b = w.blocks
    for rb in w.blocks:
        rb.bmap.fill(False)
    find = w.design.find_dirty_page
    w.mig.pss_block, w.mig.pss_page = 1, 5
    assert find(w) is None                              # a complete clean round
    a.bmap.set(3)
    assert find(w) == (a, 3) and (w.mig.pss_block, w.mig.pss_page) == (0, 3)
    a.bmap.clear(3)
    b.bmap.set(2)                                       # before the start position in b
    w.mig.pss_block, w.mig.pss_page = 1, 5
    assert find(w) == (b, 2)
    b.bmap.set(7)
    w.mig.pss_block, w.mig.pss_page = 1, 5
    assert find(w) == (b, 7)


def test_burst_ends_with_mutex_release():
    w = after_setup(burst=2)
    labels = step_until(w, "migration", "ram_save_iterate")
    assert labels[-1] == "ram_save_iterate: 2 page(s), bitmap_mutex released"
    assert w.lock_owner["bitmap_mutex"] is None and w.mig.pages_sent == 2


# ---------------------------------------------------------------------------------------------
# lifecycle
def test_cancel_then_restart_sends_every_page_again():
    w = after_setup(burst=8)
    step_until(w, "migration", "ram_save_iterate")
    assert w.mig.pages_sent == 8 and (w.dest_version[:8] == 0).all()
    w.step(["vcpu0", 3])
    w.step(["mgmt", "cancel"])
    with pytest.raises(BadChoice, match="nothing to cancel"):
        w.step(["mgmt", "cancel"])
    step_until(w, "migration", "migration cancelled")
    assert w.mig.phase == "cancelled" and not w.kvm.logging and not w.coverage_owed()
    assert w.lock_owner == {"BQL": None, "bitmap_mutex": None, "slots_lock": None}
    assert w.step(["migration", None]) == "exits"
    assert w.step(["mgmt", "start"]) == "migrate (attempt 2)"
    assert w.mig.attempt == 2 and (w.dest_version == -1).all() and (w.last_read == -1).all()
    w.step(["migration", None])
    assert all(rb.bmap.popcount() == rb.pages for rb in w.blocks)
    assert w.mig.migration_dirty_pages == TOTAL
    step_until(w, "migration", "setup done")
    finish(w)
    guest = w.page_block >= 0
    assert (w.dest_version[guest] == w.src_version[guest]).all()
    assert w.mig.pages_sent >= TOTAL and w.dest_version[3] == 1


def test_completion_stops_the_vm_and_sends_everything():
    w = after_setup()
    w.step(["vcpu0", 9])
    w.step(["device", 137])
    w.step(["mgmt", "switchover"])
    with pytest.raises(BadChoice, match="no running migration to switch over"):
        w.step(["mgmt", "switchover"])
    step_until(w, "migration", "vm_stop")
    assert not w.vm_running and w.mig.phase == "completing"
    with pytest.raises(BadChoice, match="VM is stopped"):
        w.step(["vcpu0", 9])
    with pytest.raises(BadChoice, match="VM is stopped"):
        w.step(["device", 9])
    with pytest.raises(BadChoice, match="nothing to cancel"):
        w.step(["mgmt", "cancel"])
    step_until(w, "migration", "exits")
    # the source stays stopped after completion: ram_save_cleanup's dirty-log stop is postponed
    assert w.migration_done() and w.kvm.logging and w.dirty_log_stop_postponed and w.throttle_pct == 0
    guest = w.page_block >= 0
    assert (w.dest_version[guest] == w.src_version[guest]).all()
    assert w.dest_version[9] == 1 and w.dest_version[137] == 1


def test_exact_sync_when_little_is_pending():
    w = after_setup(switchover_pages=TOTAL - 2, burst=2)
    step_until(w, "migration", "ram_save_iterate")
    w.step(["vcpu0", 100])                              # a newly dirty page keeps it above
    w.step(["vcpu0", 0])
    w.step(["vcpu0", 1])
    labels = step_until(w, "migration", "migration_bitmap_sync done")
    assert labels[0] == "KVM_GET_DIRTY_LOG slot 0" and w.mig.dirty_sync_count == 2
    assert w.mig.migration_dirty_pages == TOTAL - 2 + 2   # 0 and 1 again (100 was still set)
    assert w.mig.phase == "active"


# ---------------------------------------------------------------------------------------------
# auto-converge
def throttle_world(**kw):
    """A world after setup whose period transferred 10 pages (threshold: 5 pages at 50%)."""
    w = after_setup(**kw)
    w.mig.bytes_transferred = 10 * 4096                 # threshold: 50% of 10 pages = 5 pages
    w.mig.bytes_xfer_prev = 0
    return w


def period(w, pages):
    """End a rate period that dirtied ``pages``: run the throttle check; return (count, pct)."""
    w.mig.num_dirty_pages_period = pages
    w.design.migration_trigger_throttle(w)
    return w.mig.dirty_rate_high_cnt, w.throttle_pct


def test_throttle_two_high_periods_start_it_then_increments():
    w = throttle_world()
    assert period(w, 6) == (1, 0)                       # 6 pages > 5: high
    assert period(w, 6) == (0, 20)                      # second high period: initial 20%
    assert period(w, 5) == (0, 20)                      # 5 is not > 5
    assert period(w, 6) == (1, 20)
    assert period(w, 2) == (1, 20)                      # a low period does not reset the count
    assert period(w, 6) == (0, 30)                      # + increment


def test_throttle_is_capped_by_max_but_the_initial_step_is_not():
    w = throttle_world(max_cpu_throttle=35)
    for expected in (20, 30, 35, 35):
        period(w, 9)
        assert period(w, 9) == (0, expected)
    w = throttle_world(max_cpu_throttle=10)
    period(w, 9)
    assert period(w, 9) == (0, 20)
    period(w, 9)
    assert period(w, 9) == (0, 10)


def test_throttle_counter_runs_without_auto_converge():
    w = throttle_world(auto_converge=False)
    assert period(w, 9) == (1, 0)
    assert period(w, 9) == (0, 0)


def test_throttle_tailslow_increment():
    """QEMU: cpu_now = 100 - pct; cpu_ideal = (uint64)(cpu_now * threshold / dirty);
    increment = min(cpu_now - cpu_ideal, cpu_throttle_increment)."""
    w = throttle_world(cpu_throttle_tailslow=True, cpu_throttle_increment=30)
    period(w, 20)
    assert period(w, 20) == (0, 20)                     # the initial step ignores tailslow
    period(w, 20)
    assert period(w, 20) == (0, 50)                     # 80 - 80*5/20 = 60 > 30: increment
    period(w, 6)
    assert period(w, 6) == (0, 59)                      # 50 - int(50*5/6 = 41.7) = 9
    period(w, 8)
    assert period(w, 8) == (0, 75)                      # 41 - int(41*5/8 = 25.6) = 16


def test_period_resets_only_after_more_than_one_second():
    w = throttle_world()
    w.mig.num_dirty_pages_period = 6
    w.mig.time_last_bitmap_sync = 0
    w.clock_ms = 1000
    w.design.after_sync(w)                              # exactly 1 s: same period
    assert (w.mig.time_last_bitmap_sync, w.mig.num_dirty_pages_period) == (0, 6)
    assert w.mig.dirty_rate_high_cnt == 0 and w.mig.last_sync_end_ms == 1000
    w.clock_ms = 1001
    w.design.after_sync(w)
    assert w.mig.dirty_rate_high_cnt == 1               # the throttle saw the old period first
    assert (w.mig.time_last_bitmap_sync, w.mig.num_dirty_pages_period) == (1001, 0)
    assert w.mig.bytes_xfer_prev == w.mig.bytes_transferred


# ---------------------------------------------------------------------------------------------
# periodic design: the 5 s timer
def tick(w):
    """One ``cpu_throttle_dirty_sync_timer_tick`` under the BQL, stepped to its end; its labels."""
    probe(w, w.design.cpu_throttle_dirty_sync_timer_tick(w), bql=True)
    return drain(w)


def test_periodic_tick_syncs_only_when_the_count_is_stuck_past_one():
    w = after_setup(Periodic)
    d = w.design
    assert w.mig.dirty_sync_count == 1
    assert len(tick(w)) == 1 and d.throttle_dirty_sync_count_prev == 1   # count 1: never
    w.mig.dirty_sync_count, d.throttle_dirty_sync_count_prev = 3, 2
    assert len(tick(w)) == 1 and d.throttle_dirty_sync_count_prev == 3   # moved: skip
    labels = tick(w)                                                     # stuck at 3: sync
    assert "migration_bitmap_sync done, bitmap_mutex released" in labels
    assert w.mig.dirty_sync_count == 4 and d.throttle_dirty_sync_count_prev == 4  # read after


def test_periodic_timer_armed_before_setup_first_tick_never_syncs_stopped_at_end():
    w = world(Periodic)
    w.design.throttle_dirty_sync_count_prev = 7         # left over: arming resets it
    w.step(["mgmt", "start"])
    w.step(["migration", None])
    assert "timer" in w.actors and w.design.throttle_dirty_sync_count_prev == 0
    step_until(w, "migration", "setup done")
    assert w.step(["timer", None]) == "sleep until 5000 ms"
    with pytest.raises(BadChoice):
        w.step(["timer", None])                         # asleep
    w.step(["clock", 5000])
    assert w.step(["timer", None]) == "timer callback returns, BQL released"
    assert w.mig.dirty_sync_count == 1 and w.design.throttle_dirty_sync_count_prev == 1
    finish(w)
    assert w.actors["timer"].done


def test_periodic_timer_not_armed_without_auto_converge():
    w = after_setup(Periodic, auto_converge=False)
    assert "timer" not in w.actors


# ---------------------------------------------------------------------------------------------
# background-v1
def test_v1_legacy_flavour_before_the_first_background_sync():
    w = after_setup(BackgroundV1)
    d, a = w.design, w.blocks[0]
    assert d.sync_mode == RAMBLOCK_SYN_LEGACY and w.mig.iteration_count == 1
    a.bmap.fill(False)
    w.mig.migration_dirty_pages = 10
    w.L2.set(5)
    probe(w, d.migration_bitmap_sync(w), bql=True)
    drain(w)
    assert d.flavour == LEGACY_ITER and a.bmap.to_list() == [5] and not a.iter_bmap.any()
    assert w.mig.migration_dirty_pages == 11 and w.mig.iteration_count == 2


def test_v1_background_sync_then_modern_iter_fold():
    w = after_setup(BackgroundV1)
    d, (a, b) = w.design, w.blocks
    a.bmap.set_word(0, 0b0011)
    a.bmap.set_word(1, 0)
    b.bmap.fill(False)
    b.bmap.set(0)
    w.mig.migration_dirty_pages = 3
    period0 = w.mig.num_dirty_pages_period
    w.L2.set_word(0, 0b0110)
    w.L2.set(134)                                       # b+1
    d.sync_mode = RAMBLOCK_SYN_MODERN                   # as the watcher does before its sync
    probe(w, d.migration_bitmap_sync(w, background=True), bql=True)
    drain(w)
    # background: bmap and migration_dirty_pages untouched; L2 went to iter_bmap
    assert a.bmap.word(0) == 0b0011 and b.bmap.to_list() == [0] and w.mig.migration_dirty_pages == 3
    assert a.iter_bmap.word(0) == 0b0110 and a.shadow_bmap.word(0) == 0b0011
    assert a.shadow_bmap.word(1) == 0                   # no L2 bits in word 1: not copied
    assert b.iter_bmap.to_list() == [1] and b.shadow_bmap.to_list() == [0]
    assert w.mig.num_dirty_pages_period == period0 + 2  # a: page 2; b: page 1
    assert a.background_sync_shown_up and b.background_sync_shown_up
    assert w.mig.iteration_count == 1 and w.mig.dirty_sync_count == 2
    assert a.clear_bmap.popcount() == 32                # the series kept clear_bmap_set
    # the sender sends a's page 1 (in bmap at the background sync)
    a.bmap.clear(1)
    w.mig.migration_dirty_pages -= 1
    probe(w, d.migration_bitmap_sync(w), bql=True)
    drain(w)
    assert d.flavour == MODERN_ITER
    # a: iter 0b0110 minus (shadow 0b0011 & ~bmap 0b0001 = page 1) -> 0b0100, folded into bmap
    assert a.bmap.word(0) == 0b0101
    assert b.bmap.to_list() == [0, 1]
    assert w.mig.migration_dirty_pages == 2 + 2
    for rb in (a, b):
        assert not rb.iter_bmap.any() and not rb.shadow_bmap.any()
        assert rb.iter_dirty_pages == 0 and not rb.background_sync_shown_up
    assert w.mig.iteration_count == 2


def test_v1_watcher_flips_mode_then_runs_a_background_sync():
    w = after_setup(BackgroundV1)
    d = w.design
    w.mig.iteration_count = 2                           # past the first iteration
    assert w.step(["watcher", None]) == "sleep until 1000 ms"
    w.step(["clock", 5001])
    assert w.step(["watcher", None]) == "watcher: sync_mode = MODERN"
    assert d.sync_mode == RAMBLOCK_SYN_MODERN
    bmaps = [rb.bmap.words.copy() for rb in w.blocks]
    w.step(["vcpu0", 4])
    labels = step_until(w, "watcher", "background sync done")
    assert d.flavour == MODERN_BACKGROUND and "KVM_GET_DIRTY_LOG slot 0" in labels
    assert all(np.array_equal(rb.bmap.words, m) for rb, m in zip(w.blocks, bmaps))
    assert w.blocks[0].iter_bmap.to_list() == [4]
    assert w.mig.iteration_count == 2 and w.mig.dirty_sync_count == 2


def test_v1_watcher_waits_while_the_iteration_count_moves():
    w = after_setup(BackgroundV1)
    w.mig.iteration_count = 3                           # prev starts at 2: changed
    w.step(["watcher", None])
    w.step(["clock", 6000])
    assert w.step(["watcher", None]).startswith("sleep until")
    assert w.design.sync_mode == RAMBLOCK_SYN_LEGACY


class FakesTheDelivery(Legacy):
    """BROKEN: delivers the source's current version instead of what its read returned (a design
    that would hide a lost write by writing the destination it likes)."""

    name = "broken-fakes-the-delivery"

    def ram_save_page(self, w, rb, page):
        addr = rb.offset + page
        w.read_page(addr)
        yield "read"
        w.deliver(addr, int(w.src_version[addr]) + 1)
        yield "deliver"


def test_send_integrity_rejects_a_delivery_nobody_read():
    """Non-vacuity of send-integrity: the world refuses a version no read returned."""
    res = run(world(FakesTheDelivery), [["mgmt", "start"]] + [["migration", None]] * 40)
    assert res.violation is not None and res.violation.invariant == "send-integrity", res.violation
    assert "but the reads in flight of it are [0]" in res.violation.message


class _ForgetsTheYield(Legacy):
    """An override of a step method written as a plain function (no ``yield``)."""

    def migration_bitmap_clear_dirty(self, w, rb, page):
        return rb.bmap.test_and_clear(page)


def test_a_step_override_without_yield_is_named_with_its_file_and_line():
    """A step method overridden without ``yield`` fails at its first call with a message naming the
    method and where it is defined, not "'bool' object is not iterable" inside the base's code."""
    from dirtyproof.impl.scheduler import DesignCrash, RandomScheduler

    with pytest.raises(DesignCrash) as exc:
        run(World(Config(), _ForgetsTheYield), RandomScheduler(0, 400))
    msg = str(exc.value)
    assert "migration_bitmap_clear_dirty (defined at " in msg and "test_model_ops.py:" in msg
    assert "must yield" in msg


def test_a_release_then_an_acquire_are_two_steps_so_another_thread_takes_both_locks_between():
    """``bql_unlock()`` then ``qemu_mutex_lock(&bitmap_mutex)`` with no ``yield`` between (the
    migration thread's exact sync, then ``ram_save_iterate``) is two steps: the world ends the
    step at the acquire, holding nothing, and a second thread may take the BQL and the mutex
    there. Folded into one step, the watcher's background sync could never run in that window
    (background-v1's loss needs it: tests/test_iterate_window.py)."""
    w = world()
    order = []

    def first():
        """Under the BQL, then straight on to the mutex."""
        yield from w.acquire("BQL")
        yield "under BQL"
        w.release("BQL")
        yield from w.acquire("bitmap_mutex")
        order.append("first")
        w.release("bitmap_mutex")
        yield "under bitmap_mutex"

    def second(w=w):
        """Both locks, as a sync does."""
        yield from w.acquire("BQL")
        yield from w.acquire("bitmap_mutex")
        order.append("second")
        w.release("bitmap_mutex")
        w.release("BQL")
        yield "synced"

    w.spawn("first", first())
    w.spawn("second", second())
    assert w.step(["first", None]).endswith("under BQL")
    label = w.step(["first", None])
    assert "wait for bitmap_mutex" in label and w.actors["first"].held == ()
    assert w.lock_owner == {k: None for k in w.lock_owner}
    assert w.step(["second", None]).endswith("synced")          # both locks, between the two
    assert w.step(["first", None]).endswith("under bitmap_mutex")
    assert order == ["second", "first"]
    # an acquire with no release before it in the step is no step of its own
    w2 = world()
    w2.spawn("plain", second(w2))
    assert w2.step(["plain", None]).endswith("synced")


class _FoldsTheWindow(Legacy):
    """BROKEN (an invalid design): forgets, for the world, that its step released a lock, so that
    the acquire after it would not end the step (the window the watcher needs would close)."""

    name = "broken-folds-the-window"

    def ram_save_iterate(self, w):
        w.current.released = False
        return (yield from super().ram_save_iterate(w))


class _WakesByHand(Periodic):
    """An invalid design: ends the timer's sleep by writing its deadline instead of ``w.wake``."""

    name = "broken-wakes-by-hand"

    def migration_completion(self, w):
        t = w.actors.get("timer")
        if t is not None:
            t.wake_at_ms = 0
        return (yield from super().migration_completion(w))


@pytest.mark.parametrize("cls, field", [(_FoldsTheWindow, "released"), (_WakesByHand, "wake_at_ms")])
def test_a_design_cannot_write_a_threads_state(cls, field):
    """The world keeps each thread's scheduling state (what it holds, waits for, sleeps until,
    whether its step released a lock): a design assigning a field of it crashes with a message
    naming the field and the model's operation to use, and is never judged on it; ``held`` is a
    tuple, so it cannot be changed in place."""
    from dirtyproof.impl.scheduler import DesignCrash, RandomScheduler

    with pytest.raises(DesignCrash) as exc:
        run(World(Config(), cls), RandomScheduler(0, 3000))
    assert f"design code assigned Actor.{field} of thread" in str(exc.value)
    assert "w.wake, w.sleep_until, w.acquire" in str(exc.value)
    w = World(Config(), Legacy)
    w.step(["mgmt", "start"])
    w.step(["migration", None])
    assert isinstance(w.actors["migration"].held, tuple)
