"""User-style designs of QEMU's counters (``migration_dirty_pages``)."""
from __future__ import annotations

from dirtyproof.impl.designs import Legacy
from dirtyproof.impl.designs.base import Step


class InitCountsLastRamPage(Legacy):
    """``ram_state_init`` starts ``migration_dirty_pages`` at the size of the ram_addr space (the
    end of the last block) instead of the sum of the blocks' lengths.

    Modelled on ``ram_state_init`` (migration/ram.c), which sets ``(*rsp)->migration_dirty_pages =
    ram_bytes_total() >> TARGET_PAGE_BITS`` (the sum of ``used_length`` of the migratable blocks);
    the bug uses ``last_ram_page()`` (system/physmem.c), the size the dirty-memory bitmaps are
    allocated with, which also counts the gaps between blocks. Layer: counters.

    Scenario: with any gap between RAMBlocks (the mixed and unaligned geometries put 5 pages
    before each odd block), the counter is too large by the gap right after setup and stays so:
    ``dirty-pages-count`` fails as soon as ``bitmap_mutex`` is free after setup. The pending
    estimate never drops to the switchover threshold on its own either, so only a raised downtime
    limit ends the migration. Aligned geometries have no gap and hide it."""

    name = "user-init-counts-last-ram-page"
    summary = "broken: migration_dirty_pages starts at last_ram_page() (gaps counted)"
    expected = "unsafe"
    layer = "counters"
    breaks = "dirty-pages-count"

    def ram_save_setup(self, w) -> Step:
        """``ram_state_init`` with ``last_ram_page()``, then ``ram_init_bitmaps`` as the base."""
        mig = w.mig
        mig.migration_dirty_pages = w.ram_pages          # should be w.geometry.total_pages
        mig.time_last_bitmap_sync = w.clock_ms
        yield from self.ram_init_bitmaps(w)
