"""User-style designs: plain subclasses of the shipped designs, written from QEMU's code the way a
reviewer tries a change (issue 8). ``CORRECT`` lose no page; ``BROKEN`` each break a property
(``breaks``) in a different layer. See README.md for the table and what today's code says."""
from __future__ import annotations

from .counters import InitCountsLastRamPage
from .restart import StaleCleanupAfterRestart
from .sender import (ClearRangeBeforeBurst, MultifdNoFlushAtSync, SkipClearInLastStage, SkipClearOfUnfetchedChunk,
                     SyncTwiceAtCompletion)
from .syncs import (BlockRelativeL2Index, BmapWordOverwrite, EagerClearNoClearBmap, FastPathLateStore, SkipSetupSync,
                    SlowPathLocalSet, SlowPathOneClearAtEnd)
from .threads import ClearAtNextSync, EagerClearAfterUnlock, SlotsLockDroppedBetweenGetAndOr, TimerAlsoSyncsWhenIdle, TimerJoinedUnderBql

CORRECT = [
    SyncTwiceAtCompletion,
    SkipClearOfUnfetchedChunk,
    ClearRangeBeforeBurst,
    SkipClearInLastStage,
    TimerAlsoSyncsWhenIdle,
    FastPathLateStore,
    SlowPathLocalSet,
    SlowPathOneClearAtEnd,
    EagerClearNoClearBmap,
    SkipSetupSync,
]

BROKEN = [
    ClearAtNextSync,                  # KVM dirty log / CLEAR
    BlockRelativeL2Index,             # L2 fetch
    BmapWordOverwrite,                # bmap
    MultifdNoFlushAtSync,             # the sender
    InitCountsLastRamPage,            # counters
    TimerJoinedUnderBql,              # helper threads
    StaleCleanupAfterRestart,         # cancel and restart
    SlotsLockDroppedBetweenGetAndOr,  # lock held too briefly
    EagerClearAfterUnlock,            # KVM dirty log / CLEAR, as a race with the timer's sync
]

ALL = CORRECT + BROKEN

# For every broken design, one seeded run (``RandomScheduler(seed, steps)``, cancels=1, on the
# observe.py geometries) that breaks its property on today's model: (kvm_mode, geometry, seed,
# steps, how) (the two timer races re-found after issue 11 changed the cleanup and the timer's clock). ``prop``: a run that checks only that property (and the runner's lock-order and
# progress checks) fails it. ``extend``: a run with every check stops at a coverage violation on
# page P; driven on to completion with no more writes to P, ``no-loss`` fails on P.
WITNESSES = {
    "user-clear-at-next-sync": ("manual", "mixed", 0, 3000, "prop"),
    "user-l2-block-relative-index": ("manual", "aligned", 0, 3000, "prop"),
    "user-bmap-word-overwrite": ("manual", "mixed", 0, 3000, "prop"),
    "user-multifd-no-flush-at-sync": ("legacy", "unaligned", 1, 3000, "prop"),
    "user-init-counts-last-ram-page": ("manual", "mixed", 0, 3000, "prop"),
    "user-timer-joined-under-bql": ("manual", "mixed", 0, 300, "prop"),
    "user-stale-cleanup-after-restart": ("manual", "mixed", 0, 3000, "prop"),
    "user-slots-lock-dropped-get-or": ("initially_set", "aligned", 8, 3000, "prop"),
    "user-eager-clear-after-unlock": ("manual", "aligned", 75, 3000, "extend"),
}

__all__ = ["CORRECT", "BROKEN", "ALL", "WITNESSES"] + [c.__name__ for c in ALL]
