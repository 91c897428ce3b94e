"""HELD OUT (third set): never tune a search (hunt weights, strategies, schedules, explorer bounds
or reductions) on these designs; they exist to measure. See README.md. Not installed, imported by
nothing in the suite, not in mutants/manifest.json."""
from .correct import (LegacyClearAlignedRange, LegacyReadBeforeTakeLocked, PeriodicPrevCountNotReset,
                      PeriodicSenderUnlocksForRead, PeriodicTimerDefersSyncToMigrationThread,
                      PeriodicTimerSkipsSlowPathBlocks)
from .counters import LegacyLastStageUncounted, LegacyPeriodCountedAfterRollover
from .lifecycle import LegacyRestartSkipsLogStart, PeriodicTimerStoppedByFlag
from .stop_copy import LegacyDrainBeforeLastSync, LegacyLastStageSkipsKvmSync
from .timer_races import (PeriodicCountSnapshotAcrossClear, PeriodicTimerCountAddedBySender,
                          PeriodicTimerDefersClearToNextTick, PeriodicTimerTickWithoutBQL,
                          PeriodicUnlockedReadBeforeTake, Qemu110BlockClearAfterMutex)

# the broken designs: each has ``breaks``, the property its ground truth shows
BROKEN = [
    PeriodicTimerTickWithoutBQL, PeriodicTimerDefersClearToNextTick, PeriodicTimerCountAddedBySender,
    PeriodicUnlockedReadBeforeTake, PeriodicCountSnapshotAcrossClear, Qemu110BlockClearAfterMutex,
    LegacyPeriodCountedAfterRollover, LegacyLastStageUncounted,
    PeriodicTimerStoppedByFlag, LegacyRestartSkipsLogStart,
    LegacyDrainBeforeLastSync, LegacyLastStageSkipsKvmSync,
]
# the safe designs that differ from the shipped ones (``breaks = None``): false-alarm measures
CORRECT = [
    PeriodicSenderUnlocksForRead, LegacyReadBeforeTakeLocked, PeriodicPrevCountNotReset,
    PeriodicTimerDefersSyncToMigrationThread, LegacyClearAlignedRange, PeriodicTimerSkipsSlowPathBlocks,
]
HELD_OUT = BROKEN + CORRECT

__all__ = ["BROKEN", "CORRECT", "HELD_OUT"] + [c.__name__ for c in HELD_OUT]
