"""The seed series (background sync, v1): ``iter_bmap``, ``shadow_bmap`` and a watcher thread.

Modelled as the patches are, not as they should be (see ``docs/qemu-semantics.md`` section 12):
the watcher flips ``sync_mode`` to MODERN outside any lock, then takes the BQL for a
*background* sync that moves L2 into ``iter_bmap`` without touching ``bmap``; the next ordinary
sync drops from ``iter_bmap`` the pages sent since (``shadow_bmap`` set, ``bmap`` clear) and folds
the rest into ``bmap``.
"""
from __future__ import annotations

import numpy as np

from ..bitmap import WORD_MASK
from ..steps import CLEAR_BMAP_SET, ITER_FOLD, ITER_PROLOGUE, ITER_TAIL, L2_XCHG, WATCHER_DONE, WATCHER_FLIP
from ..steps import Step as S
from .base import Design, Step

RAMBLOCK_SYN_LEGACY, RAMBLOCK_SYN_MODERN = "LEGACY", "MODERN"
LEGACY_ITER, MODERN_ITER, MODERN_BACKGROUND = "LEGACY_ITER", "MODERN_ITER", "MODERN_BACKGROUND"


class BackgroundV1(Design):
    """Hyman Huang's v1 series: background syncs feed the throttle between iterations.

    Declared state: ``sync_mode`` (RAMBLOCK_SYN_LEGACY/MODERN, a global never reset),
    ``flavour`` (the sync flavour of the block being synced), ``watcher_quit``; per RAMBlock
    ``iter_dirty_pages`` and ``background_sync_shown_up``, and the bitmaps ``shadow_bmap`` and
    ``iter_bmap``; ``mig.iteration_count``."""

    name = "background-v1"
    summary = "seed series v1: watcher thread, background syncs into iter_bmap/shadow_bmap"
    coverage_bitmaps = ("iter_bmap",)
    regions = ("migration_background_sync_watcher",)
    # A background sync counts new dirty pages for the throttle without setting them in bmap.
    not_applicable = ("period-counter",)

    def attach(self, w) -> None:
        """Bind to the world; ``sync_mode`` is a global that starts LEGACY and is never reset."""
        super().attach(w)
        self.sync_mode = RAMBLOCK_SYN_LEGACY
        self.flavour = LEGACY_ITER
        self.watcher_quit = False
        for rb in w.blocks:          # per-block state of the series, declared before any attempt
            rb.iter_dirty_pages = 0
            rb.background_sync_shown_up = False

    # -- bitmaps --------------------------------------------------------------------------------
    def ram_list_init_bitmaps(self, w) -> None:
        """Also allocate ``shadow_bmap`` and ``iter_bmap`` (zero) and the per-block counter/flag."""
        super().ram_list_init_bitmaps(w)
        for rb in w.blocks:
            rb.add_bitmap("shadow_bmap")
            rb.add_bitmap("iter_bmap")
            rb.iter_dirty_pages = 0
            rb.background_sync_shown_up = False

    def ram_save_setup(self, w) -> Step:
        """``ram_state_init`` also zeroes ``iteration_count``."""
        w.mig.iteration_count = 0
        yield from super().ram_save_setup(w)

    # -- syncs ------------------------------------------------------------------------------------
    def migration_bitmap_sync(self, w, last_stage: bool = False, background: bool = False) -> Step:
        """The ordinary sync, or with ``background`` the watcher's; only ordinary syncs count as iterations."""
        self.background = background
        if not background:
            w.mig.iteration_count += 1
        yield from super().migration_bitmap_sync(w, last_stage)
        self.background = False

    def ramblock_sync_dirty_bitmap(self, w, rb) -> Step:
        """Pick the flavour from ``sync_mode`` (read now, per block) and the background flag."""
        if self.sync_mode == RAMBLOCK_SYN_LEGACY and not self.background:
            self.flavour = LEGACY_ITER
            yield from super().ramblock_sync_dirty_bitmap(w, rb)
            return
        self.flavour = MODERN_BACKGROUND if self.background else MODERN_ITER
        n = yield from self.cpu_physical_memory_sync_dirty_bitmap(w, rb)
        w.mig.num_dirty_pages_period += n
        if self.flavour == MODERN_ITER:
            w.mig.migration_dirty_pages += rb.iter_dirty_pages
            rb.shadow_bmap.fill(False)
            rb.iter_bmap.fill(False)
            rb.iter_dirty_pages = 0
            rb.background_sync_shown_up = False
            yield S(ITER_TAIL, block=rb.index)

    def cpu_physical_memory_sync_dirty_bitmap(self, w, rb) -> Step:
        """The series' L2 -> L3 sync; LEGACY_ITER is the old one."""
        if self.flavour == LEGACY_ITER:
            return (yield from super().cpu_physical_memory_sync_dirty_bitmap(w, rb))
        background = self.flavour == MODERN_BACKGROUND
        it, shadow, bmap = rb.iter_bmap, rb.shadow_bmap, rb.bmap
        num_dirty = 0
        if rb.background_sync_shown_up:
            # drop from iter what was sent since the background sync
            it.words &= ~(shadow.words & ~bmap.words)
            yield S(ITER_PROLOGUE, block=rb.index)
        if rb.fast_path:
            base = rb.offset // rb.word_bits
            for k in range(rb.words()):
                if w.L2.word(base + k, rb.word_bits):
                    bits = w.L2.xchg_word(base + k, 0, rb.word_bits)
                    it.set_word(k, it.word(k) | bits)
                    if background:
                        shadow.set_word(k, bmap.word(k))
                    num_dirty += (bits & ~bmap.word(k) & WORD_MASK).bit_count()
                    yield S(L2_XCHG, block=rb.index, word=base + k, into="iter_bmap")
            rb.clear_bmap.fill(True)
            yield S(CLEAR_BMAP_SET, block=rb.index)
        else:
            for k in range(rb.pages):
                if background and bmap.test(k):
                    shadow.set(k)
                dirty = yield from self.sync_one_page(w, rb, k)
                if dirty:
                    if not bmap.test(k):
                        num_dirty += 1
                    it.set(k)
        if self.flavour == MODERN_ITER:
            new = it.words & ~bmap.words
            rb.iter_dirty_pages += int(np.bitwise_count(new).sum())
            bmap.words |= new
            yield S(ITER_FOLD, block=rb.index)
        if background:
            rb.background_sync_shown_up = True
        return num_dirty

    # -- the watcher --------------------------------------------------------------------------------
    def start_threads(self, w) -> None:
        """``migration_background_sync_setup``: the watcher starts after ``qemu_savevm_state_setup``,
        before ``qemu_savevm_wait_unplug`` makes the state ACTIVE (dirty-limit is not modelled). Its
        first check of ``migration_is_active()`` can therefore come while the state is still
        SETUP (or WAIT_UNPLUG), and then it quits at once (see the ``helper-idle`` warning)."""
        self.watcher_quit = False
        w.spawn("watcher", self.migration_background_sync_watcher(w))

    def stop_threads(self, w) -> None:
        """``migration_background_sync_cleanup``: post the quit semaphore (the watcher wakes and exits)."""
        self.watcher_quit = True
        w.wake("watcher")

    def migration_completion(self, w) -> Step:
        """``migration_background_sync_cleanup`` (quit and join the watcher), then completion."""
        self.stop_threads(w)
        yield from w.join("watcher")
        yield from super().migration_completion(w)

    def migration_cancel(self, w) -> Step:
        """``migrate_fd_cleanup`` also runs ``migration_background_sync_cleanup``: quit and join
        the watcher before the cancel's cleanup, so a restarted migration can start a new one."""
        self.stop_threads(w)
        yield from w.join("watcher")
        yield from super().migration_cancel(w)

    def migration_background_sync_watcher(self, w) -> Step:
        """Every second: if the iteration count is past 1 and unchanged since the last tick, and the
        rate period is older than 5 s, flip ``sync_mode`` (no lock) and run a background sync under
        the BQL. As patch 3/7: the quit flag is read at the loop's top and after the 1 s wait only."""
        mig, cfg = w.mig, w.config
        prev_iter_cnt = 2
        while True:
            if w.throttle_pct >= cfg.max_cpu_throttle or mig.phase != "active" or self.watcher_quit:
                return
            yield from w.sleep_until(w.clock_ms + cfg.watcher_poll_ms)
            if self.watcher_quit:
                return
            cnt = mig.iteration_count
            if cnt <= 1:
                continue
            unchanged, prev_iter_cnt = cnt == prev_iter_cnt, cnt     # prev updated every tick
            if unchanged and w.clock_ms - mig.time_last_bitmap_sync > cfg.watcher_idle_ms:
                self.sync_mode = RAMBLOCK_SYN_MODERN
                yield S(WATCHER_FLIP)
                # once it has the BQL the watcher syncs without looking at the quit flag or the
                # migration state again: a cleanup posted meanwhile waits in its join for this sync
                yield from w.acquire("BQL")
                yield from self.migration_bitmap_sync(w, last_stage=False, background=True)
                w.release("BQL")
                yield S(WATCHER_DONE)
