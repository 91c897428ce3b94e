"""dirtyproof.mutants: deliberately broken designs, each one change away from a real design.

``MUTANTS`` maps corpus names to classes; ``manifest.json`` records, for every mutant and every
shipped design, the expected verdict, the property expected to break and the rule that flags it on
the way, and the longest shrunk counterexample the hunter may report (:func:`load_manifest`).
"""
from __future__ import annotations

import json
from importlib import resources

from .lifecycle import RemainingAfterCleanup, TimerFlagNotDeleted, WatcherLeftOnCancel
from .current import BatchedSlowCountsRaw, LastStageSetAtExactSync, LastStageSkipsBmapTake
from .sending import ClearMaskRange, ClearNoReprotect, ClearPreviousChunk, ReadBeforeClear
from .syncs import (BmapInitLastPageMissing, BmapReusedOnRestart, CountOutsideMutex, DirtyCountRawBits, NoFinalSync, NonAtomicXchg,
                    PeriodPopcount, SkipSlotOr)
from .hinting import TimerSyncSkipsNotifiers
from .multifd import MultifdNoRoundFlush
from .ring import RingBackupBitmapSkipped, RingLazyReset, RingResetBeforeRecord, RingSyncNoKick
from .threads import BgSyncTakesLegacyPath, ForgetIterFold, IterateSyncInMutex, TimerMutexBeforeBql

MUTANTS: dict[str, type] = {c.name: c for c in (
    ReadBeforeClear, ClearPreviousChunk, ClearMaskRange, ClearNoReprotect,
    NonAtomicXchg, SkipSlotOr, CountOutsideMutex, DirtyCountRawBits, PeriodPopcount, NoFinalSync,
    BmapReusedOnRestart, BmapInitLastPageMissing, TimerMutexBeforeBql, IterateSyncInMutex, ForgetIterFold,
    BgSyncTakesLegacyPath, LastStageSkipsBmapTake, LastStageSetAtExactSync, BatchedSlowCountsRaw,
    RemainingAfterCleanup, TimerFlagNotDeleted, WatcherLeftOnCancel,
)}

# Mutants broken only for a guest that hints free pages (Config.free_page_hinting): their
# expectations are the manifest's "hinting" section, hunted with the flag on.
HINTING_MUTANTS: dict[str, type] = {c.name: c for c in (TimerSyncSkipsNotifiers,)}

# Mutants broken only with multifd sending (Config.multifd_channels > 0): their expectations are
# the manifest's "multifd" section, hunted with the flag on.
MULTIFD_MUTANTS: dict[str, type] = {c.name: c for c in (MultifdNoRoundFlush,)}

# Mutants broken only in dirty ring worlds (Config.kvm_mode "dirty_ring"): their expectations are
# the manifest's "dirty_ring" section, hunted with the mode on.
RING_MUTANTS: dict[str, type] = {c.name: c for c in (
    RingResetBeforeRecord, RingLazyReset, RingSyncNoKick, RingBackupBitmapSkipped)}


def load_manifest() -> dict:
    """The manifest: ``{"designs": {name: entry}, "mutants": {name: entry}}``; an entry has
    ``verdict`` (safe/unsafe: whether a property breaks), ``property`` (its id or null), ``rule`` (the
    rule flagged on the way, or for a safe entry the rule broken, or null), ``max_steps``, ``found_by``
    (``sweep`` or ``machine``) and ``machine_max_steps`` (see the manifest's ``_comment``)."""
    return json.loads(resources.files(__package__).joinpath("manifest.json").read_text())


__all__ = ["MUTANTS", "HINTING_MUTANTS", "MULTIFD_MUTANTS", "RING_MUTANTS", "load_manifest"]
