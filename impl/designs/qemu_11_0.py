"""QEMU 11.0: QEMU 10.1 plus the batched slow-path clear.

Modelled from the qemu-devel archive (QEMU's code is not copied): ``e8a6d158dbfa`` "migration:
merge fragmented clear_dirty ioctls" (Chuang Xu, v4 of 18 Dec 2025, pulled 23 Dec 2025 for
11.0). For a block off the fast path, ``physical_memory_sync_dirty_bitmap`` (migration/ram.c,
the 10.2-era name of ``cpu_physical_memory_sync_dirty_bitmap``) makes one call of
``physical_memory_test_and_clear_dirty(start, length, DIRTY_MEMORY_MIGRATION, bmap)``
(system/physmem.c) for the whole block instead of one per page: per page, an atomic
test-and-clear of the L2 bit and, when it was set, the ``bmap`` test-and-set (counting only newly
set bits); then one ``memory_region_clear_dirty_bitmap`` of the whole block, whatever was dirty
(one KVM_CLEAR_DIRTY_LOG per memslot, mask from the slot copy). All of it runs inside the sync's
``bitmap_mutex`` section. The fast path is unchanged.

Why it stays safe: the CLEAR re-protects only pages fetched into L1c by this sync's GET, whose
bits the OR put in L2 and the loop moved into ``bmap``; the sender cannot read any of them before
the CLEAR because the sync holds ``bitmap_mutex`` throughout. A write between a page's
test-and-clear and the CLEAR to a page still dirty in L1 goes unlogged, but the page is in
``bmap`` and is read only after the CLEAR.

Not modelled: postcopy (as in :mod:`.qemu_10_1`), and what master changed after 11.0 (the merged
``save_query_pending`` API and a final pending query at switchover; docs/scope.md).
"""
from __future__ import annotations

from ..steps import L2_TEST_AND_CLEAR
from ..steps import Step as S
from .base import Step
from .qemu_10_1 import Qemu101


class Qemu110(Qemu101):
    """QEMU 11.0: :class:`Qemu101` with the slow path's remote clears merged into one per block,
    after the block's L2 -> ``bmap`` loop (e8a6d158dbfa)."""

    name = "qemu-11.0"
    summary = "QEMU 11.0: qemu-10.1 + slow path clears once per block inside the sync (e8a6d158dbfa)"

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """Fast path as before. Slow path: per page, L2 test-and-clear plus ``bmap`` test-and-set
        in one step (a page whose L2 bit is clear changes nothing and takes no step); then the
        remote clear of the whole block. Returns the bits newly set in ``bmap``."""
        if rb.fast_path:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        num_dirty = 0
        for k in range(rb.pages):
            page = rb.offset + k
            if not w.L2.test(page):
                continue
            w.L2.test_and_clear(page)
            if not rb.bmap.test_and_set(k):
                num_dirty += 1
            yield S(L2_TEST_AND_CLEAR, block=rb.index, page=page, value=True, into="bmap")
        yield from self.memory_region_clear_dirty_bitmap(w, rb.offset, rb.offset + rb.pages)
        return num_dirty
