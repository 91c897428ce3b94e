"""Unit tests of the model's building blocks against small hand-worked examples:
packed bitmaps, geometry and config validation, and KVM's dirty log in each mode."""
import numpy as np
import pytest

from dirtyproof.impl import BlockSpec, Config, Geometry
from dirtyproof.impl.bitmap import WORD_MASK, Bitmap, words_for
from dirtyproof.impl.geometry import SlotSpec
from dirtyproof.impl.kvm import KVM
from dirtyproof.impl.ramblock import RAMBlock


# ---------------------------------------------------------------------------------------------
# Bitmap
def test_words_for():
    assert [words_for(n) for n in (0, 1, 63, 64, 65, 128, 129)] == [0, 1, 1, 1, 2, 2, 3]


def test_bitmap_single_bits_are_little_endian_in_words():
    bm = Bitmap(70)
    assert len(bm.words) == 2 and not bm.any()
    bm.set(3)
    bm.set(64)
    assert bm.word(0) == 0b1000 and bm.word(1) == 1
    assert bm.test(3) and bm.test(64) and not bm.test(4)
    bm.clear(3)
    assert bm.word(0) == 0 and bm.to_list() == [64]


def test_bitmap_bit_63_round_trips_through_uint64():
    bm = Bitmap(64)
    bm.set(63)
    assert bm.word(0) == 1 << 63
    assert bm.test_and_clear(63) and bm.word(0) == 0


def test_bitmap_test_and_clear_and_test_and_set_return_old_value():
    bm = Bitmap(10)
    assert bm.test_and_set(5) is False      # was clear, now set
    assert bm.test_and_set(5) is True       # already set, unchanged
    assert bm.to_list() == [5]
    assert bm.test_and_clear(5) is True
    assert bm.test_and_clear(5) is False
    assert not bm.any()


def test_bitmap_ranges_across_words():
    bm = Bitmap(130)
    bm.set_range(2, 67)                     # bits 2..66
    assert bm.popcount() == 65
    assert bm.word(0) == WORD_MASK & ~0b11
    assert bm.word(1) == 0b111
    assert bm.word(2) == 0
    bm.clear_range(60, 65)
    assert bm.to_list() == list(range(2, 60)) + [65, 66]
    bm.set_range(10, 10)                    # empty range: nothing
    assert bm.popcount() == 60
    assert bm.range_bits(55, 70) == [55, 56, 57, 58, 59, 65, 66]


def test_bitmap_find_next_respects_start_and_end():
    bm = Bitmap(200)
    for i in (5, 64, 130, 199):
        bm.set(i)
    assert bm.find_next(0, 200) == 5
    assert bm.find_next(6, 200) == 64
    assert bm.find_next(65, 200) == 130
    assert bm.find_next(131, 199) == 199    # bit 199 is at end: not found, returns end
    assert bm.find_next(131, 200) == 199
    assert bm.find_next(100, 120) == 120    # nothing in range
    assert bm.find_next(64, 64) == 64


def test_bitmap_fill_keeps_bits_past_nbits_clear():
    bm = Bitmap(70)
    bm.fill(True)
    assert bm.popcount() == 70 and bm.word(1) == (1 << 6) - 1
    bm.fill(False)
    assert not bm.any()


def test_bitmap_xchg_word_returns_old_and_stores_new():
    bm = Bitmap(128)
    bm.set_word(1, 0b1010)
    assert bm.xchg_word(1, 0) == 0b1010
    assert bm.word(1) == 0
    assert bm.xchg_word(0, 7) == 0 and bm.to_list() == [0, 1, 2]


def test_bitmap_copy_is_independent_and_eq_compares_contents():
    a = Bitmap(20)
    a.set(7)
    b = a.copy()
    assert a == b
    b.set(8)
    assert a != b and a.to_list() == [7]
    assert Bitmap(20) != Bitmap(21)


# ---------------------------------------------------------------------------------------------
# Geometry
def test_geometry_fast_path_needs_offset_and_length_64_aligned():
    assert BlockSpec("a", 0, 64).fast_path
    assert BlockSpec("a", 128, 192).fast_path
    assert not BlockSpec("a", 0, 65).fast_path
    assert not BlockSpec("a", 5, 64).fast_path


def test_geometry_sizes_with_a_gap():
    g = Geometry((BlockSpec("a", 0, 64), BlockSpec("b", 69, 10)), clear_bmap_shift=3)
    assert g.ram_pages == 79 and g.total_pages == 74 and g.chunk_pages == 8


def test_geometry_slots_split_a_block_evenly():
    g = Geometry((BlockSpec("a", 0, 10, slots=3), BlockSpec("b", 64, 64)))
    assert g.slots() == (SlotSpec(0, 0, 0, 4), SlotSpec(1, 0, 4, 3), SlotSpec(2, 0, 7, 3),
                         SlotSpec(3, 1, 64, 64))


@pytest.mark.parametrize("blocks, shift, problem", [
    ((BlockSpec("a", 0, 64), BlockSpec("b", 60, 8)), 2, r"'a' \[0, 64\) and 'b' \[60, 68\) overlap"),
    ((BlockSpec("b", 60, 8), BlockSpec("a", 0, 64)), 2, "overlap"),      # order does not matter
    ((BlockSpec("a", 0, 0),), 2, "'a' is empty"),
    ((BlockSpec("a", 0, -3),), 2, "'a' is empty"),
    ((BlockSpec("a", 0, 8), BlockSpec("a", 8, 8)), 2, "'a' used twice"),
    ((BlockSpec("", 0, 8),), 2, "empty name"),
    ((BlockSpec("a", -1, 8),), 2, "negative offset"),
    ((BlockSpec("a", 0, 4, slots=5),), 2, "cannot be split into 5 memslots"),
    ((BlockSpec("a", 0, 4, slots=0),), 2, "cannot be split into 0 memslots"),
    ((BlockSpec("a", 0, 64),), 32, "clear_bmap_shift 32 out of range"),
    ((BlockSpec("a", 0, 64),), -1, "clear_bmap_shift -1 out of range"),
    ((BlockSpec("a", 0, 64),), 2.0, "clear_bmap_shift 2.0 out of range"),
    ((), 2, "no RAMBlock"),
])
def test_geometry_validation_names_the_problem(blocks, shift, problem):
    with pytest.raises(ValueError, match=problem):
        Geometry(blocks, shift)


def test_geometry_adjacent_blocks_do_not_overlap():
    Geometry((BlockSpec("a", 0, 64), BlockSpec("b", 64, 8)))


def test_geometry_json_round_trip_and_malformed():
    g = Geometry((BlockSpec("a", 0, 64, slots=2), BlockSpec("b", 69, 10)), clear_bmap_shift=3)
    assert Geometry.from_json(g.to_json()) == g
    with pytest.raises(ValueError, match="malformed geometry"):
        Geometry.from_json({"blocks": [{"name": "a"}]})
    with pytest.raises(ValueError, match="overlap"):
        Geometry.from_json({"blocks": [{"name": "a", "offset": 0, "pages": 9},
                                       {"name": "b", "offset": 8, "pages": 9}]})


def test_geometry_simple_mixes_fast_and_slow_blocks():
    g = Geometry.simple(aligned=2, unaligned=1, pages=64, shift=2)
    assert [b.fast_path for b in g.blocks] == [True, True, False]
    assert g.blocks[2].offset == 133 and g.blocks[2].pages == 35


# ---------------------------------------------------------------------------------------------
# Config
@pytest.mark.parametrize("kw, problem", [
    ({"kvm_mode": "dirty-ring"}, "unknown KVM mode 'dirty-ring'"),
    ({"vcpus": 0}, "at least one vCPU"),
    ({"burst": 0}, "burst must be at least 1"),
    ({"switchover_pages": -1}, "switchover_pages must be a non-negative integer"),
    ({"burst": True}, "burst must be a non-negative integer"),
    ({"dirty_sync_timer_ms": 1.5}, "dirty_sync_timer_ms must be a non-negative integer"),
    ({"max_cpu_throttle": 0}, "max_cpu_throttle must be within 1..99"),
    ({"max_cpu_throttle": 100}, "max_cpu_throttle must be within 1..99"),
    ({"geometry": "mixed"}, "geometry must be a Geometry"),
])
def test_config_validation_names_the_problem(kw, problem):
    with pytest.raises(ValueError, match=problem):
        Config(**kw)


def test_config_json_round_trip_and_unknown_keys():
    cfg = Config(geometry=Geometry.simple(shift=3), kvm_mode="initially_set", vcpus=3, burst=5)
    assert Config.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown config key.*bogus"):
        Config.from_json({"bogus": 1})
    with pytest.raises(ValueError, match="JSON object"):
        Config.from_json([])


def test_config_manual_protect_per_mode():
    assert [Config(kvm_mode=m).manual_protect for m in ("legacy", "manual", "initially_set")] == \
        [False, True, True]


# ---------------------------------------------------------------------------------------------
# RAMBlock
def test_ramblock_chunks_cut_at_block_end():
    rb = RAMBlock(0, BlockSpec("b", 133, 10), clear_bmap_shift=2)
    assert rb.clear_bmap.nbits == 3                 # chunks [0,4) [4,8) [8,10)
    assert rb.chunk_of(9) == 2 and rb.chunk_range(2) == (8, 10)
    assert rb.chunk_range(0) == (0, 4)
    big = RAMBlock(0, BlockSpec("a", 0, 64), clear_bmap_shift=7)
    assert big.clear_bmap.nbits == 1 and big.chunk_range(0) == (0, 64)


def test_ramblock_design_bitmaps():
    rb = RAMBlock(0, BlockSpec("a", 0, 64), clear_bmap_shift=2)
    bm = rb.add_bitmap("iter_bmap")
    assert rb.iter_bmap is bm and rb.extra_bitmaps == {"iter_bmap": bm} and bm.nbits == 64


# ---------------------------------------------------------------------------------------------
# KVM: two slots, [0, 8) and [8, 20), with a gap page 20 outside any slot
SLOTS = (SlotSpec(0, 0, 0, 8), SlotSpec(1, 0, 8, 12))


def kvm(mode):
    """The two-slot KVM in ``mode`` with dirty logging started."""
    k = KVM(SLOTS, 21, mode)
    k.log_start()
    return k


def test_kvm_log_start_arms_every_slot_page():
    k = kvm("manual")
    assert k.protected.to_list() == list(range(20)) and not k.L1.any() and not k.L1c.any()
    k = kvm("legacy")
    assert k.protected.to_list() == list(range(20))


def test_kvm_initially_set_starts_all_set_and_unprotected():
    k = kvm("initially_set")
    assert k.L1.to_list() == list(range(20)) and not k.protected.any()
    assert k.guest_write(3) is False            # no fault: the page is not armed
    assert k.L1.test(3)


def test_kvm_write_fault_only_when_protected():
    k = kvm("manual")
    assert k.guest_write(5) is True
    assert k.L1.to_list() == [5] and not k.protected.test(5)
    assert k.guest_write(5) is False            # unprotected now: no fault, bit stays set
    assert k.L1.to_list() == [5]


def test_kvm_nothing_logged_when_logging_is_off():
    k = KVM(SLOTS, 21, "manual")
    assert k.guest_write(5) is False and not k.L1.any()
    k = kvm("manual")
    k.guest_write(5)
    k.get_dirty_log(SLOTS[0])
    k.log_stop()
    assert not (k.L1.any() or k.L1c.any() or k.protected.any() or any(k.unsynced))


def test_kvm_legacy_get_clears_and_reprotects():
    k = kvm("legacy")
    for p in (1, 5, 9):
        k.guest_write(p)
    k.get_dirty_log(SLOTS[0])
    assert k.L1c.to_list() == [1, 5]
    assert k.L1.to_list() == [9]                # the other slot is untouched
    assert k.protected.test(1) and k.protected.test(5) and not k.protected.test(9)
    assert k.unsynced == [True, False]
    assert k.clear_dirty_log(SLOTS[0], 0, 8) is None    # no CLEAR ioctl in legacy mode
    assert k.guest_write(5) is True             # re-armed: the next write faults again


def test_kvm_legacy_get_overwrites_the_slot_copy():
    k = kvm("legacy")
    k.guest_write(1)
    k.get_dirty_log(SLOTS[0])
    k.guest_write(2)
    k.get_dirty_log(SLOTS[0])
    assert k.L1c.to_list() == [2]


def test_kvm_manual_get_only_copies():
    k = kvm("manual")
    for p in (1, 5, 9):
        k.guest_write(p)
    k.get_dirty_log(SLOTS[0])
    assert k.L1c.to_list() == [1, 5]
    assert k.L1.to_list() == [1, 5, 9]          # nothing cleared
    assert not k.protected.test(1) and not k.protected.test(5)


def test_kvm_manual_clear_masks_from_l1c_and_clears_l1c_over_range():
    k = kvm("manual")
    for p in (1, 2, 5):
        k.guest_write(p)
    k.get_dirty_log(SLOTS[0])                   # L1c = {1, 2, 5}
    k.guest_write(3)                            # written after the GET: not in L1c
    ev = k.clear_dirty_log(SLOTS[0], 0, 4)
    assert (ev.slot, ev.start, ev.end, ev.mask, ev.unfetched) == (0, 0, 4, [1, 2], [])
    assert k.L1.to_list() == [3, 5]             # 3 survives: QEMU never saw it
    assert k.protected.test(1) and k.protected.test(2) and not k.protected.test(3)
    assert k.L1c.to_list() == [5]               # cleared over [0, 4) only


def test_kvm_clear_is_clipped_to_the_slot():
    k = kvm("manual")
    for p in (7, 8):
        k.guest_write(p)
    k.get_dirty_log(SLOTS[0])
    k.get_dirty_log(SLOTS[1])
    ev = k.clear_dirty_log(SLOTS[0], 6, 10)
    assert (ev.start, ev.end, ev.mask) == (6, 8, [7])
    assert k.L1.to_list() == [8] and k.L1c.to_list() == [8]
    assert k.clear_dirty_log(SLOTS[0], 8, 12) is None   # nothing of the slot in range


def test_kvm_clear_with_a_foreign_mask_reports_unfetched_bits():
    k = kvm("manual")
    k.guest_write(1)
    k.guest_write(2)
    k.get_dirty_log(SLOTS[0])
    k.guest_write(3)
    mask = Bitmap(21)
    mask.set_range(1, 4)                        # {1, 2, 3}: 3 was never fetched
    ev = k.clear_dirty_log(SLOTS[0], 0, 8, mask)
    assert ev.mask == [1, 2, 3] and ev.unfetched == [3]
    assert not k.L1.any()                       # 3's dirty bit was thrown away


def test_kvm_initially_set_clear_arms_pages_lazily():
    k = kvm("initially_set")
    k.get_dirty_log(SLOTS[0])
    assert k.L1c.to_list() == list(range(8))
    k.clear_dirty_log(SLOTS[0], 0, 2)
    assert k.protected.to_list() == [0, 1]
    assert k.L1.to_list() == list(range(2, 20))
    assert k.guest_write(0) is True and k.guest_write(2) is False


def test_kvm_slot_of():
    k = kvm("manual")
    assert k.slot_of(7).index == 0 and k.slot_of(8).index == 1
    with pytest.raises(ValueError, match="page 20 is in no memslot"):
        k.slot_of(20)


def test_kvm_get_while_not_logging_is_a_no_op():
    k = KVM(SLOTS, 21, "legacy")
    k.L1.set(1)
    k.get_dirty_log(SLOTS[0])
    assert not k.L1c.any() and k.unsynced == [False, False]
    assert np.array_equal(k.L1.words, np.array([2], dtype=np.uint64))
