"""HELD OUT (second set): never tune a search (hunt weights, strategies, explorer bounds) on these
designs; they exist to measure. See README.md. Not installed, imported by nothing in the suite."""
from .cancel_restart import LegacyRestartResumesOldBitmap, PeriodicRestartKeepsRateHistory
from .correct import (LegacyPreDrainBeforeStop, LegacySlowPathClearBeforeFetch, Periodic2019SenderLocking,
                      PeriodicEagerClearInSync, PeriodicPlusIterateSync, PeriodicSkipLastStageClear)
from .counters import LegacyPeriodCountsFetchedBits, PeriodicTimerZeroesIdlePeriod
from .lock_scope import PeriodicSlowPathPerPageMutex, PeriodicSyncYieldsMutexPerWord
from .ported import LegacyChunkClearAfterSend, PeriodicClearWholeChunkMask
from .second_actor import PeriodicTimerPreClearsChunks, PeriodicTimerRecountsDirtyPages
from .stop_copy import LegacyLogStopAtVmStop, LegacyLogSyncBeforeVmStop

# the broken designs: each has ``breaks``, the property its ground truth shows
BROKEN = [
    PeriodicTimerPreClearsChunks, PeriodicTimerRecountsDirtyPages,
    PeriodicSlowPathPerPageMutex, PeriodicSyncYieldsMutexPerWord,
    PeriodicTimerZeroesIdlePeriod, LegacyPeriodCountsFetchedBits,
    LegacyRestartResumesOldBitmap, PeriodicRestartKeepsRateHistory,
    LegacyLogStopAtVmStop, LegacyLogSyncBeforeVmStop,
    LegacyChunkClearAfterSend, PeriodicClearWholeChunkMask,
]
# the safe designs that differ from the shipped ones (``breaks = None``): false-alarm measures
CORRECT = [
    PeriodicPlusIterateSync, PeriodicEagerClearInSync, PeriodicSkipLastStageClear, Periodic2019SenderLocking,
    LegacySlowPathClearBeforeFetch, LegacyPreDrainBeforeStop,
]
HELD_OUT = BROKEN + CORRECT

__all__ = ["BROKEN", "CORRECT", "HELD_OUT"] + [c.__name__ for c in HELD_OUT]
