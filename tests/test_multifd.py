"""Multifd sending (``Config.multifd_channels``, impl/multifd.py): the migration thread queues a
page after taking its bit, a channel reads and delivers it later, the channels are flushed once per
round; the property ``landing-order`` rejects a design whose per-round flush does not wait.

Default tests take seconds (directed schedules and a few seeded runs on a four-page world); the
hunts at the quality tier's budget are ``slow`` and opt-in (``DIRTYPROOF_SLOW=1``).
"""
from __future__ import annotations

import dataclasses
import os

import pytest

from dirtyproof.checked import resolve, run
from dirtyproof.impl import BlockSpec, Config, Geometry, World
from dirtyproof.impl.designs import DESIGNS, Legacy
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.impl.steps import BMAP_TAKE
from dirtyproof.impl.steps import Step as S
from dirtyproof.mutants import MULTIFD_MUTANTS, MUTANTS, HINTING_MUTANTS, load_manifest
from dirtyproof.mutants.multifd import MultifdNoRoundFlush
from dirtyproof.spec import INVARIANTS, PROPERTY, RULE, RUNTIME_CHECKS, Checker
from manifest_checks import assert_hunt_matches
from stepping import Driver

GEO = Geometry((BlockSpec("odd0", 1, 4, 1),), 0)      # pages 1..4, one slot, slow path
MANIFEST = load_manifest()
MULTIFD = MANIFEST["multifd"]
TIER = MANIFEST["tier"]


def _cfg(channels=2, **kw) -> Config:
    base = dict(geometry=GEO, vcpus=1, burst=2, switchover_pages=1, multifd_channels=channels)
    base.update(kw)
    return Config(**base)


def test_flag_is_checked_and_recorded():
    """Bad values are refused (one ValueError), the flag round-trips through a trace's config,
    and the default world has no multifd state and no channel threads."""
    for bad in (-1, True, 1.5, 256):
        with pytest.raises(ValueError):
            Config(multifd_channels=bad)
    cfg = Config(multifd_channels=3)
    assert Config.from_json(cfg.to_json()) == cfg
    w = World(Config(), Legacy)
    w.step(["mgmt", "start"])
    assert w.multifd is None and not any(a.startswith("multifd") for a in w.actors)


def test_pages_are_queued_unread_and_a_channel_reads_them_later():
    """The migration thread takes and queues pages without reading them (in flight from the
    take: coverage holds); a write before the channel's read is what the channel sends."""
    d = Driver(Legacy, _cfg())
    d.ap("mgmt", "start")
    w = d.w
    d.until(lambda: w.multifd is not None and any(w.multifd.packet))
    assert (w.last_read[1:5] == -1).all()           # nothing read yet
    busy = next(i for i, p in enumerate(w.multifd.packet) if p)
    page = w.multifd.packet[busy][0]
    assert page in w.ghost.queued and page in w.ghost.held_pages()
    d.ap("vcpu0", page)                             # a write between the queueing and the read
    assert d.violation is None
    d.ap(f"multifd_send_{busy}", None)
    assert int(w.last_read[page]) == int(w.src_version[page]) and page not in w.ghost.queued
    d.ap(f"multifd_send_{busy}", None)
    assert int(w.dest_version[page]) == int(w.src_version[page])
    assert d.violation is None
    assert f"multifd_send_{busy}" not in w.runnable_threads()     # idle again


def test_the_round_flush_waits_for_the_channels():
    """At the end of a round the migration thread cannot go on before every channel delivered."""
    d = Driver(Legacy, _cfg())
    d.ap("mgmt", "start")
    w = d.w
    d.until(lambda: w.actors["migration"].until is not None)
    assert "migration" not in w.runnable_threads()
    for _ in range(20):
        chans = [n for n in w.runnable_threads() if n.startswith("multifd_send_")]
        if not chans:
            break
        d.ap(chans[0], None)
    assert w.multifd.drained() and "migration" in w.runnable_threads() and d.violation is None


def test_shipped_designs_with_multifd_are_safe_in_seeded_runs():
    """Seeded random runs with two channels: every shipped design completes with no property
    broken (the per-round flush keeps copies of a page in order)."""
    for name, cls in DESIGNS.items():
        for seed in range(6):
            r = run(World(_cfg(), cls), RandomScheduler(seed, 300), keep_log=False)
            assert r.ok and r.completed, f"{name} seed {seed}: {r.violation} (replay: RandomScheduler({seed}, 300))"


def test_landing_order_rejects_the_mutant_and_passes_legacy():
    """Non-vacuity of ``landing-order``: seed 6 of this world makes the mutant's older copy land
    after a newer one; the shipped legacy design, same seed and world, is fine."""
    r = run(World(_cfg(), MultifdNoRoundFlush), RandomScheduler(6, 300), keep_log=False)
    assert r.violation is not None and r.violation.invariant == "landing-order", r.violation
    assert run(World(_cfg(), Legacy), RandomScheduler(6, 300), keep_log=False).ok


def test_runs_with_multifd_are_deterministic():
    """The same seed gives the same choices and labels (channels are ordinary thread actors)."""
    a = run(World(_cfg(3), Legacy), RandomScheduler(3, 200))
    b = run(World(_cfg(3), Legacy), RandomScheduler(3, 200))
    assert a.choices == b.choices and [s.label for s in a.log] == [s.label for s in b.log]
    assert any(c[0].startswith("multifd_send_") for c in a.choices)


def test_multifd_manifest_is_well_formed():
    """Each multifd world is valid Config overrides with channels on, lists every shipped design
    and every multifd mutant; the mutant is unsafe with ``landing-order`` and some shipped
    design is safe (the check is not vacuous)."""
    from dirtyproof.hunt.runner import check_overrides

    ids = {inv.id: inv.kind for inv in INVARIANTS} | {k: PROPERTY for k in RUNTIME_CHECKS}
    assert not set(MULTIFD_MUTANTS) & (set(MUTANTS) | set(HINTING_MUTANTS))
    for world, overrides in MULTIFD["worlds"].items():
        assert check_overrides(overrides) and overrides["multifd_channels"] > 0
        assert set(MULTIFD[world]) == set(DESIGNS) | set(MULTIFD_MUTANTS), world
        for name, e in MULTIFD[world].items():
            assert e["verdict"] in ("safe", "unsafe"), name
            assert (e["found_by"] is None) == (e["verdict"] == "safe") == (e["property"] is None), name
            assert e["property"] is None or ids[e["property"]] == PROPERTY, name
            assert e["rule"] is None or ids[e["rule"]] == RULE, name
        for name in MULTIFD_MUTANTS:
            assert MULTIFD[world][name]["verdict"] == "unsafe", (world, name)
            assert MULTIFD[world][name]["property"] == "landing-order", (world, name)
    assert any(MULTIFD[w][d]["verdict"] == "safe" for w in MULTIFD["worlds"] for d in DESIGNS)


def test_multifd_mutants_resolve_by_name():
    """A multifd mutant is a design name on every verb, like a corpus mutant."""
    for name, cls in MULTIFD_MUTANTS.items():
        assert resolve(name) is cls


MULTIFD_ENTRIES = sorted((world, name) for world in MULTIFD["worlds"] for name in MULTIFD[world])


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DIRTYPROOF_SLOW"), reason="opt-in: DIRTYPROOF_SLOW=1")
@pytest.mark.parametrize("world,name", MULTIFD_ENTRIES)
def test_multifd_hunt_gives_the_manifest_verdict(world, name, tmp_path):
    """The whole hunt (the tier's examples, the section's sweep schedules) with the multifd world's overrides gives the
    recorded verdict, by the recorded search and property, within the recorded length (about a
    minute per design: opt-in)."""
    from dirtyproof.hunt import hunt

    e = MULTIFD[world][name]
    rep = hunt(resolve(name), examples=TIER["examples"], shrink_budget=TIER["shrink_budget"], profile="ci",
               schedules=MULTIFD["schedules"], trace_dir=str(tmp_path), config_overrides=MULTIFD["worlds"][world])
    assert_hunt_matches(rep, e)


def test_the_explorer_world_accepts_the_flag():
    """The explorer runs a multifd world (a capped, non-exhaustive search: its state space grows
    fast with channels) and finds no violation in what it visits."""
    from dirtyproof.explore.bounds import Bounds, default_config
    from dirtyproof.explore.engine import explore

    cfg = dataclasses.replace(default_config("manual"), multifd_channels=2)
    r = explore(Legacy, cfg, Bounds(guest_writes=1, device_writes=0, clock_moves=1, cancels=0, moves=1,
                                    max_states=300))
    assert r.violation is None and r.capped and not r.exhaustive


def test_a_channel_read_beside_the_sync_that_fetched_it_breaks_no_rule():
    """Why qemu-10.1 and qemu-11.0 reported clear-before-read with two channels: the hunt's
    schedule (tests/data/multifd-qemu-10.1-channel-read-in-sync.json, seed 0 of the multifd
    section's sweep) has a channel read page 10 while the migration thread's sync is between
    its GET (the page's write fetched into L1c and OR-ed into L2) and the L2-to-bmap step, with
    the chunk's clear owed again by the sync before it. The old exemptions looked only at bmap
    (not yet set) and L1c (set): flagged. The page's L2 bit outlives the owed clear and leads
    to a later send that takes the clear before it reads, so no write after the read can be
    erased: the general statement passes it, and the run breaks nothing."""
    from pathlib import Path

    from dirtyproof.impl.trace import Trace

    t = Trace.load(Path(__file__).parent / "data" / "multifd-qemu-10.1-channel-read-in-sync.json")
    assert t.design == "qemu-10.1" and t.config.multifd_channels == 2
    w = World(t.config, DESIGNS[t.design])
    checker = Checker(w.design)
    for i, choice in enumerate(t.steps):
        w.step(list(choice))
        assert checker.after_step(w, i) is None, (i, choice)
    assert ("read", 10, True) in w.events                   # the last step is the channel's read
    rb = w.block_of(10)
    assert rb.clear_bmap.test(rb.chunk_of(10 - rb.offset)) and w.kvm.L1c.test(10)
    assert not rb.bmap.test(10 - rb.offset) and w.L2.test(10)


class MultifdSkipsChunkClear(Legacy):
    """Queues pages for the channels without taking their chunk's owed remote clear (test-only
    mutant: the clear left out of the multifd path)."""

    name = "multifd-skips-chunk-clear"

    def migration_bitmap_clear_dirty(self, w, rb, page: int):
        """``bmap`` test-and-clear only."""
        ret = rb.bmap.test_and_clear(page)
        if ret:
            w.mig.migration_dirty_pages -= 1
        yield S(BMAP_TAKE, block=rb.index, page=rb.offset + page, value=ret)
        return ret


@pytest.mark.parametrize("mode", ["manual", "initially_set"])
def test_clear_before_read_flags_a_channel_read_of_an_uncleared_page(mode):
    """Non-vacuity with multifd: the general statement still flags a channel's read when the
    queued page's chunk clear was never taken (fetched, marked nowhere else), where Legacy,
    same worlds and seeds, breaks no rule with two channels."""
    geo = Geometry((BlockSpec("ram0", 0, 64, 1),), 2)   # fast path: the sync owes every chunk's clear
    rules = set()
    for seed in range(2):
        res = run(World(_cfg(geometry=geo, kvm_mode=mode), MultifdSkipsChunkClear),
                  RandomScheduler(seed, 600), keep_log=False)
        rules |= {rv.violation.invariant for rv in res.rule_violations}
        ok = run(World(_cfg(geometry=geo, kvm_mode=mode), Legacy), RandomScheduler(seed, 600), keep_log=False)
        assert ok.ok and not ok.rule_violations, (seed, ok.violation, ok.rule_violations[:1])
    assert "clear-before-read" in rules, rules
