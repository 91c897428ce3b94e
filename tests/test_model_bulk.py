"""The bulk sync (impl/bulk.py) against the stepped one: for many random small states, one bulk
``migration_bitmap_sync`` leaves every layer and counter exactly as stepping the design's own
sync to its end does. Its two fast-path loops, the numba kernel (impl/bulk_kernel.py) and the
numpy chunks, leave the same state."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dirtyproof.impl import BlockSpec, Config, Geometry, World
from dirtyproof.impl import bulk, bulk_kernel
from dirtyproof.impl.bulk import _extract, check_bulk_applicable, migration_bitmap_sync_bulk
from dirtyproof.impl.designs import BackgroundV1, IterateSync, Legacy, Periodic

DESIGNS = {"legacy": Legacy, "periodic": Periodic, "iterate-sync": IterateSync}


@st.composite
def geometries(draw):
    """1-3 blocks, fast (64-aligned) or slow, with gaps (possibly none), 1-3 slots each."""
    blocks, off = [], draw(st.sampled_from([0, 0, 3, 64]))
    for i in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            off = (off + 63) // 64 * 64
            pages = 64 * draw(st.integers(1, 3))
        else:
            pages = draw(st.integers(1, 150))
        slots = draw(st.integers(1, min(3, pages)))
        blocks.append(BlockSpec(f"b{i}", off, pages, slots))
        off += pages + draw(st.sampled_from([0, 0, 1, 7, 64]))
    return Geometry(tuple(blocks), draw(st.integers(0, 7)))


def random_words(rng, nbits, nwords, density):
    """``nwords`` packed words; each of the first ``nbits`` bits is set with probability ``density``."""
    bits = rng.random(nwords * 64) < density
    bits[nbits:] = False
    return np.packbits(bits, bitorder="little").view(np.uint64).copy()


def twin(geo, mode, design, seed, logging):
    """A world whose migration thread is about to run its setup sync, every layer and counter
    overwritten with random contents from ``seed`` (the same for the same arguments)."""
    w = World(Config(geometry=geo, kvm_mode=mode), DESIGNS[design])
    w.step(["mgmt", "start"])
    w.step(["migration", None])                 # ram_init_bitmaps; next step starts the sync
    rng = np.random.default_rng(seed)
    density = lambda: rng.choice([0.0, 0.05, 0.5, 0.95, 1.0])
    n = w.ram_pages
    for bm in (w.kvm.L1, w.kvm.L1c, w.kvm.protected, w.L2):
        bm.words[:] = random_words(rng, n, len(bm.words), density())
    for rb in w.blocks:
        for bm in (rb.bmap, rb.clear_bmap):
            bm.words[:] = random_words(rng, bm.nbits, len(bm.words), density())
    w.kvm.logging = logging
    w.kvm.unsynced = [bool(x) for x in rng.integers(0, 2, len(w.slots))]
    mig = w.mig
    mig.migration_dirty_pages = int(rng.integers(0, 1000))
    mig.num_dirty_pages_period = int(rng.integers(0, 1000))
    w.ghost.period_new_bits = int(rng.integers(0, 1000))
    mig.dirty_sync_count = int(rng.integers(0, 5))
    mig.dirty_rate_high_cnt = int(rng.integers(0, 2))
    mig.bytes_transferred = int(rng.integers(0, 1000)) * 4096
    mig.bytes_xfer_prev = int(rng.integers(0, mig.bytes_transferred // 4096 + 1)) * 4096
    mig.time_last_bitmap_sync = int(rng.integers(0, 3000))
    w.clock_ms = int(rng.integers(0, 4000))
    w.throttle_pct = int(rng.choice([0, 20, 90]))
    return w


def state(w):
    """Every layer's words, the migration counters, KVM's unsynced flags and the throttle."""
    mig = w.mig
    layers = {k: bm.words.tolist() for k, bm in w.layer_bitmaps().items()}
    counters = {k: getattr(mig, k) for k in (
        "migration_dirty_pages", "dirty_sync_count", "num_dirty_pages_period",
        "time_last_bitmap_sync", "bytes_xfer_prev", "dirty_rate_high_cnt", "syncs",
        "last_sync_end_ms")}
    counters["period_new_bits"] = w.ghost.period_new_bits
    # (not the ghost's hands: a stepped sync still sits in migration_bitmap_sync after its last
    # step, holding what it fetched and stored, until its next step returns from it)
    return layers, counters, list(w.kvm.unsynced), w.throttle_pct, w.total_syncs


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(geo=geometries(), mode=st.sampled_from(["legacy", "manual", "initially_set"]),
       design=st.sampled_from(sorted(DESIGNS)), seed=st.integers(0, 2**32 - 1),
       logging=st.sampled_from([True, True, True, False]))
def test_bulk_sync_equals_stepped_sync(geo, mode, design, seed, logging):
    stepped = twin(geo, mode, design, seed, logging)
    bulk = twin(geo, mode, design, seed, logging)
    assert state(stepped) == state(bulk)
    before = stepped.mig.migration_dirty_pages
    for _ in range(10 * geo.ram_pages + 100):
        if stepped.step(["migration", None]) == "migration_bitmap_sync done, bitmap_mutex released":
            break
    else:
        pytest.fail("the stepped sync never ended")
    n = migration_bitmap_sync_bulk(bulk)
    assert state(bulk) == state(stepped)
    assert n == stepped.mig.migration_dirty_pages - before


needs_numba = pytest.mark.skipif(bulk_kernel.kernel() is None,
                                 reason="numba not installed (pip install -e '.[fast]'): "
                                        "only the numpy path of the bulk sync can run")

# Fast-path blocks long enough for the compiled loop's vector body and its remainder (37 and 5
# words), split in memslots, around a slow-path block that shares no word with them.
BIG = Geometry((BlockSpec("a", 0, 64 * 37, 3), BlockSpec("s", 64 * 37 + 5, 100),
                BlockSpec("b", 64 * 40, 64 * 5, 2)), 4)


@needs_numba
@pytest.mark.parametrize("mode", ["legacy", "manual", "initially_set"])
@pytest.mark.parametrize("logging", [True, False])
def test_numba_and_numpy_paths_leave_the_same_state(mode, logging):
    for geo in (BIG, Geometry.simple()):
        for seed in range(12):
            fused = twin(geo, mode, "legacy", seed, logging)
            chunked = twin(geo, mode, "legacy", seed, logging)
            assert migration_bitmap_sync_bulk(fused, path="numba") == \
                migration_bitmap_sync_bulk(chunked, path="numpy")
            assert state(fused) == state(chunked)


@needs_numba
def test_kernel_touches_only_its_words():
    # Words [a, b) of a block starting at world word `base`: the kernel against the same
    # operations written with numpy, every mode; words outside the range are left alone.
    rng = np.random.default_rng(7)
    k = bulk_kernel.kernel()
    for base, a, b in ((0, 0, 1), (3, 5, 40), (1, 0, 67), (10, 33, 33)):
        for logging, legacy in ((True, True), (True, False), (False, True), (False, False)):
            L1, L1c, L2, prot = (rng.integers(0, 2**64, 120, dtype=np.uint64) for _ in range(4))
            bmap = rng.integers(0, 2**64, 70, dtype=np.uint64)
            want = [x.copy() for x in (L1, L1c, L2, prot, bmap)]
            wL1, wL1c, wL2, wprot, wbmap = want
            g = slice(base + a, base + b)
            if logging:
                wL1c[g] = wL1[g]
                if legacy:
                    wprot[g] |= wL1c[g]
                    wL1[g] = 0
            wL2[g] |= wL1c[g]
            new = int(np.bitwise_count(wL2[g] & ~wbmap[a:b]).sum())
            wbmap[a:b] |= wL2[g]
            wL2[g] = 0
            assert k(L1, L1c, L2, prot, bmap, base, a, b, logging, legacy) == new
            for got, exp in zip((L1, L1c, L2, prot, bmap), want):
                assert got.tolist() == exp.tolist()


def test_bulk_path_choice(monkeypatch):
    monkeypatch.setenv("DIRTYPROOF_BULK", "numpy")
    assert bulk.bulk_path() == "numpy"
    with pytest.raises(ValueError, match="expected 'numba' or 'numpy'"):
        bulk.bulk_path("cffi")
    monkeypatch.delenv("DIRTYPROOF_BULK")
    assert bulk.bulk_path() == ("numpy" if bulk_kernel.kernel() is None else "numba")


def test_bulk_sync_hand_worked_two_slow_blocks_sharing_a_word():
    # b: pages [3, 10), c: [10, 70) share word 0 and reach into word 1; a: fast [128, 192)
    geo = Geometry((BlockSpec("b", 3, 7), BlockSpec("c", 10, 60), BlockSpec("a", 128, 64)), 2)
    w = World(Config(geometry=geo, kvm_mode="manual"), Legacy)
    w.step(["mgmt", "start"])
    w.step(["migration", None])
    b, c, a = w.blocks
    for rb in w.blocks:
        rb.bmap.fill(False)
    w.L2.fill(False)
    w.L2.set(4)                                 # b+1
    w.L2.set(69)                                # c+59, in word 1
    w.kvm.protected.clear(64)
    w.kvm.L1.set(64)                            # c+54: a fault, fetched by the GET
    w.kvm.protected.clear(130)
    w.kvm.L1.set(130)                           # a+2
    c.bmap.set(59)                              # already set: not counted
    w.mig.migration_dirty_pages = 1
    assert migration_bitmap_sync_bulk(w) == 3
    assert b.bmap.to_list() == [1] and c.bmap.to_list() == [54, 59] and a.bmap.to_list() == [2]
    assert not w.L2.any()
    assert w.kvm.L1.to_list() == [130]          # slow path cleared 64 at once; a's clear is owed
    assert w.kvm.protected.test(64) and not w.kvm.protected.test(130)
    assert w.kvm.L1c.to_list() == [130] and a.clear_bmap.popcount() == 16
    assert not b.clear_bmap.any() and not c.clear_bmap.any()
    assert w.mig.migration_dirty_pages == 4 and w.mig.dirty_sync_count == 1


def test_extract_shifts_bits_across_words():
    words = np.zeros(3, dtype=np.uint64)
    for i in (60, 61, 64, 130):
        words[i >> 6] |= np.uint64(1 << (i & 63))
    out = _extract(words, 60, 71)               # bits 60..130 -> 0..70
    got = [i for i in range(71) if int(out[i >> 6]) >> (i & 63) & 1]
    assert got == [0, 1, 4, 70] and len(out) == 2
    assert _extract(words, 61, 3).tolist() == [1]              # bits 61..63: only 61 is set
    assert _extract(words, 64, 64).tolist() == [1]


def test_bulk_refuses_what_it_cannot_replace():
    geo = Geometry.simple()
    w = World(Config(geometry=geo), Legacy)
    with pytest.raises(ValueError, match="needs a migration"):
        migration_bitmap_sync_bulk(w)
    w = World(Config(geometry=geo), BackgroundV1)
    w.step(["mgmt", "start"])
    with pytest.raises(ValueError, match="background-v1.*overrides migration_bitmap_sync"):
        check_bulk_applicable(w)
    w = World(Config(geometry=geo), Legacy)
    w.step(["mgmt", "start"])
    for _ in range(4):                          # init, GET slot 0: the thread holds slots_lock
        w.step(["migration", None])
    assert w.lock_owner["slots_lock"] == "migration"
    with pytest.raises(ValueError, match="migration holds slots_lock"):
        migration_bitmap_sync_bulk(w)
