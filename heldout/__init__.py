"""HELD OUT: never tune a search (hunt weights, strategies, explorer bounds) on these designs;
they exist to measure. See README.md. Not installed, imported by nothing in the suite."""
from .cancel_restart import LegacyBitmapsKeptAcrossCancel, LegacyDirtyLogFlagLeftOver, PeriodicRAMStateReused
from .counters import PeriodicTimerSyncNoBitmapMutex, PeriodicUnlockedDirtyPagesRMW
from .lock_scope import PeriodicSearchOnlyLocked
from .second_actor import (PeriodicClearBmapAfterUnlock, PeriodicDeferredSlowPathClear, PeriodicSlotsLockSplit,
                           PeriodicTimerThreadNoBQL)
from .stop_copy import IterateSyncSkipsFreshLastSync, LegacyCompleteRateLimited, LegacySyncBeforeVmStop

HELD_OUT = [
    PeriodicSlotsLockSplit, PeriodicClearBmapAfterUnlock, PeriodicTimerThreadNoBQL, PeriodicDeferredSlowPathClear,
    PeriodicSearchOnlyLocked,
    PeriodicTimerSyncNoBitmapMutex, PeriodicUnlockedDirtyPagesRMW,
    LegacyBitmapsKeptAcrossCancel, PeriodicRAMStateReused, LegacyDirtyLogFlagLeftOver,
    LegacySyncBeforeVmStop, IterateSyncSkipsFreshLastSync, LegacyCompleteRateLimited,
]

__all__ = ["HELD_OUT"] + [c.__name__ for c in HELD_OUT]
