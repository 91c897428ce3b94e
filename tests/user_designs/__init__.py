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

__all__ = ["CORRECT", "BROKEN", "ALL"] + [c.__name__ for c in ALL]
