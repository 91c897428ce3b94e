"""Scope and parameters: the chunk size QEMU allows runs too. The model's default
``clear_bmap_shift`` of 2 is an abstraction below QEMU's minimum of 6 (impl/geometry.py); at
QEMU's minimum every shipped design stays safe on seeded runs, in every KVM mode, with blocks of
several chunks on both paths. Seconds."""
from __future__ import annotations

import pytest

from dirtyproof.impl import Config, World
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.impl.geometry import QEMU_CLEAR_BITMAP_SHIFT_MIN, Geometry
from dirtyproof.checked import run
from dirtyproof.impl.scheduler import RandomScheduler

# a 128-page fast-path block (two chunks of 64) and a 67-page slow-path block (a chunk and a tail)
GEO = Geometry.simple(aligned=1, unaligned=1, pages=128, shift=QEMU_CLEAR_BITMAP_SHIFT_MIN)
# background-v1 is unsafe by the manifest (a rare schedule); the others are proved safe
SAFE = [d for d in DESIGNS if d != "background-v1"]


def test_the_geometry_has_several_chunks_per_block():
    w = World(Config(geometry=GEO), DESIGNS["legacy"])
    assert GEO.clear_bmap_shift == 6
    assert [rb.clear_bmap.nbits for rb in w.blocks] == [2, 2]
    assert [rb.fast_path for rb in w.blocks] == [True, False]


@pytest.mark.parametrize("design", SAFE)
@pytest.mark.parametrize("mode", ["legacy", "manual", "initially_set"])
def test_shipped_designs_stay_safe_at_qemus_minimum_shift(design, mode):
    w = World(Config(geometry=GEO, kvm_mode=mode), DESIGNS[design])
    res = run(w, RandomScheduler(0, 3000), keep_log=False)
    assert res.ok, (design, mode, res.violation)
    assert w.mig is not None and w.mig.phase == "completed", "the run did not complete: no-loss was never checked"
