"""The third set's ground truth, replayed with heldout2's verifier: each broken design's seeded run
or trace breaks its property; each safe design keeps every property on a sweep of seeded runs.

    PYTHONPATH=. .venv/bin/python -m heldout3.verify [--ok-seeds N]

A seeded entry is exactly ``dirtyproof run --design heldout3.MOD:Class --seed S --kvm-mode M``
(2000 free-running steps, at most one cancel); a trace entry is ``dirtyproof replay
heldout3/traces/FILE`` (built by ``python -m heldout3.directed --save``). Exit 1 if any ground
truth does not hold. HELD OUT: never tune a search on these.
"""
from __future__ import annotations

import sys
from pathlib import Path

from heldout2.verify import main as verify_main

from . import BROKEN, CORRECT
from . import counters, lifecycle, stop_copy, timer_races

TRACES = Path(__file__).parent / "traces"

# class -> ("seed", KVM mode, seed) for a plain seeded run, or ("trace", file in traces/);
# established with plain seeded runs (seeds 0..N in each mode) before any engine ran on the set
GROUND_TRUTH = {
    timer_races.PeriodicTimerTickWithoutBQL: ("seed", "manual", 10),
    timer_races.PeriodicTimerDefersClearToNextTick: ("seed", "initially_set", 13),
    timer_races.PeriodicTimerCountAddedBySender: ("seed", "manual", 0),
    timer_races.PeriodicUnlockedReadBeforeTake: ("seed", "legacy", 24),
    timer_races.PeriodicCountSnapshotAcrossClear: ("seed", "manual", 1),    # was 0: see README, "Ground truth re-established"
    timer_races.Qemu110BlockClearAfterMutex: ("trace", "qemu110-block-clear-after-mutex-loss.json"),
    counters.LegacyPeriodCountedAfterRollover: ("seed", "manual", 0),
    counters.LegacyLastStageUncounted: ("seed", "manual", 0),
    lifecycle.PeriodicTimerStoppedByFlag: ("seed", "manual", 0),
    lifecycle.LegacyRestartSkipsLogStart: ("seed", "manual", 0),
    stop_copy.LegacyDrainBeforeLastSync: ("seed", "manual", 0),
    stop_copy.LegacyLastStageSkipsKvmSync: ("seed", "manual", 0),
}


def main(argv=None) -> int:
    """Check every ground truth of this set; print one line per design."""
    return verify_main(argv, broken=BROKEN, correct=CORRECT, table=GROUND_TRUTH, traces=TRACES)


if __name__ == "__main__":
    sys.exit(main())
