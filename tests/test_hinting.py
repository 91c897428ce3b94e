"""Free-page hinting (``Config.free_page_hinting``, impl/balloon.py): the guest's reports, QEMU's
hint handler, the precopy notifiers, and the ghost's "declared free" exemption.

Directed schedules (a few dozen steps each) show what each part is for: the timer sync without
the notifiers loses a reused page that the shipped periodic design re-sends; the owed chunk clear
of QEMU's hint handler loses a page the guest reuses before the hint is applied (manual protect).
"""
from __future__ import annotations

import dataclasses

import pytest

from dirtyproof.impl import BlockSpec, Config, Geometry, World
from dirtyproof.impl.designs import DESIGNS, Legacy, Periodic
from dirtyproof.impl.designs.base import Step
from dirtyproof.checked import run
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.impl.world import BadChoice
from dirtyproof.mutants.hinting import TimerSyncSkipsNotifiers
from dirtyproof.spec import Checker
from manifest_checks import assert_hunt_matches

GEO = Geometry((BlockSpec("odd0", 1, 4, 1),), 0)      # pages 1..4, one slot, slow path
# a fast-path block: its sync leaves the remote clear owed in clear_bmap (1-page chunks)
FAST = Geometry((BlockSpec("ram0", 0, 64, 1),), 0)


def _cfg(mode="legacy", geometry=GEO, **kw) -> Config:
    return Config(geometry=geometry, kvm_mode=mode, vcpus=1, burst=1, switchover_pages=2,
                  free_page_hinting=True, **kw)


class Driver:
    """Applies choices to a world and checks every invariant after each (as the runner does)."""

    def __init__(self, design, cfg: Config) -> None:
        self.w = World(cfg, design)
        self.checker = Checker(self.w.design)
        self.choices: list = []
        self.violation = None

    def ap(self, *choice) -> None:
        """One step; the first property violation is kept and stops further steps."""
        if self.violation is not None:
            return
        self.w.step(list(choice))
        self.choices.append(list(choice))
        self.violation = self.checker.after_step(self.w, len(self.choices) - 1)

    def until(self, pred, who="migration", limit=300) -> None:
        """Step thread ``who`` until ``pred()`` holds."""
        for _ in range(limit):
            if self.violation is not None or pred():
                return
            self.ap(who, None)
        raise AssertionError(f"{who} did not get there in {limit} steps")

    def finish(self) -> None:
        """Switch over and run the migration thread (then any other) to the end."""
        w = self.w
        if not w.mig.downtime_raised:
            self.ap("mgmt", "switchover")
        for _ in range(500):
            if self.violation is not None or not w.migration_active():
                return
            threads = w.runnable_threads()
            self.ap("migration" if "migration" in threads else threads[0], None)


def _kind(d: Driver, who: str):
    a = d.w.actors[who]
    return a.step.kind if a.step is not None else None


def _reuse_across_timer_sync(design) -> Driver:
    """Setup, two sends, an exact sync that does not complete, the timer's first tick; then the
    guest reports page 3 free and writes it again before the hint is applied, the timer's
    second tick syncs (fetching the write), and only then the iothread applies the hint."""
    d = Driver(design, _cfg())
    w = d.w
    d.ap("mgmt", "start")
    d.until(lambda: _kind(d, "migration") == "setup_done")
    d.ap("timer", None)                                   # first wait: until 5000 ms
    d.until(lambda: w.mig.pages_sent >= 2)
    d.ap("vcpu0", 1)
    d.ap("vcpu0", 2)                                      # the exact sync will not complete
    d.until(lambda: w.mig.dirty_sync_count >= 2 and w.lock_owner["BQL"] is None)
    d.until(lambda: w.lock_owner["bitmap_mutex"] is None and _kind(d, "migration") == "iterate_done")
    d.ap("clock", 5000)
    d.ap("timer", None)
    d.ap("timer", None)                                   # first tick remembers the count
    d.ap("guest-hint", 3)
    d.ap("iothread", None)                                # the cmd id: S_START
    d.ap("vcpu0", 3)                                      # reuse before the hint is applied
    d.ap("clock", 5000)
    d.ap("timer", None)
    d.until(lambda: _kind(d, "timer") == "timer_return", who="timer")
    d.until(lambda: not w.balloon.free_page_vq and _kind(d, "iothread") == "free_page_vq", who="iothread")
    d.finish()
    return d


def test_flag_off_world_has_no_balloon_and_refuses_hints():
    """Off by default: no device, no iothread, no free_page_lock; a hint is a bad choice."""
    w = World(Config(), Legacy)
    assert w.balloon is None and "iothread" not in w.actors and "free_page_lock" not in w.lock_owner
    w.step(["mgmt", "start"])
    with pytest.raises(BadChoice, match="free_page_hinting is off"):
        w.step(["guest-hint", 0])


def test_config_flag_is_checked_and_recorded():
    """A non-bool flag is refused; the flag round-trips through a trace's config JSON."""
    with pytest.raises(ValueError, match="free_page_hinting"):
        Config(free_page_hinting="yes")
    assert Config.from_json(_cfg().to_json()).free_page_hinting is True


def test_timer_sync_without_notifiers_loses_a_reused_page():
    """The mutant's timer sync leaves hinting on: the stale hint clears the reuse's only mark."""
    d = _reuse_across_timer_sync(TimerSyncSkipsNotifiers)
    assert d.violation is not None and d.violation.invariant == "coverage", d.violation
    assert d.violation.page == 3
    assert d.choices[-1] == ["iothread", None]            # the hint applied after the sync


def test_periodic_drops_the_stale_hint_and_resends():
    """The same schedule on QEMU's periodic design: the notifier stops hinting before the timer
    sync, the stale hint is dropped, and the reused page reaches the destination."""
    d = _reuse_across_timer_sync(Periodic)
    assert d.violation is None, d.violation
    w = d.w
    assert w.migration_done() and int(w.dest_version[3]) == int(w.src_version[3]) == 1


def _hint_applied_then(design, mode: str, reuse_before_apply: bool) -> Driver:
    """On a fast-path block: setup (page 4 written after logging starts: dirty in L1 and writable
    when the first sync fetches it, its chunk clear owed), the guest reports
    page 4 free, and writes it before or after the iothread applies the hint; then completion."""
    d = Driver(design, _cfg(mode, FAST))
    d.ap("mgmt", "start")
    d.until(lambda: _kind(d, "migration") == "init_bitmaps")
    d.ap("vcpu0", 4)                                      # dirty in L1 when the first sync fetches it
    d.until(lambda: _kind(d, "migration") == "setup_done")
    d.ap("guest-hint", 4)
    d.ap("iothread", None)                                # the cmd id: S_START
    if reuse_before_apply:
        d.ap("vcpu0", 4)
    d.until(lambda: not d.w.balloon.free_page_vq and _kind(d, "iothread") == "free_page_vq", who="iothread")
    if not reuse_before_apply:
        d.ap("vcpu0", 4)
    d.finish()
    return d


def test_hinted_page_is_not_sent_and_counter_stays_right():
    """A page declared free and never written again is skipped: it is cleared from bmap,
    migration_dirty_pages follows (the counter property is checked at every step) and the
    migration completes without it, no property broken."""
    d = Driver(Legacy, _cfg("manual"))
    d.ap("mgmt", "start")
    d.until(lambda: _kind(d, "migration") == "setup_done")
    d.ap("guest-hint", 4)
    d.until(lambda: not d.w.balloon.free_page_vq and _kind(d, "iothread") == "free_page_vq", who="iothread")
    assert not d.w.blocks[0].bmap.test(3)
    d.finish()
    assert d.violation is None and d.w.migration_done()
    assert int(d.w.dest_version[4]) == -1                 # never sent: the guest said it was free


class HintClearsTheNextPageToo(Legacy):
    """A hint handler that clears one page past the hinted range from bmap."""

    name = "hint-clears-next-page"

    def qemu_guest_free_page_hint(self, w, start, npages) -> Step:
        """One page too many."""
        yield from super().qemu_guest_free_page_hint(w, start, npages + 1)


def test_the_exemption_covers_only_declared_pages():
    """The ghost exempts what the guest declared free, nothing else: a handler that also drops
    the next page's mark breaks coverage on that page at the hint's step."""
    d = Driver(HintClearsTheNextPageToo, _cfg("manual"))
    d.ap("mgmt", "start")
    d.until(lambda: _kind(d, "migration") == "setup_done")
    d.ap("guest-hint", 3)
    d.until(lambda: not d.w.balloon.free_page_vq and _kind(d, "iothread") == "free_page_vq", who="iothread")
    assert d.violation is not None and d.violation.invariant == "coverage" and d.violation.page == 4
    assert d.w.last_step.kind == "free_page_hint"


class HintTakesTheBql(Legacy):
    """A hint handler that takes the BQL (inside the iothread's free_page_lock section)."""

    name = "hint-takes-bql"

    def qemu_guest_free_page_hint(self, w, start, npages) -> Step:
        """BQL first, then the usual handler."""
        yield from w.acquire("BQL")
        w.release("BQL")
        yield from super().qemu_guest_free_page_hint(w, start, npages)


def test_free_page_lock_is_in_the_checked_lock_order():
    """free_page_lock sits between the BQL and bitmap_mutex: the iothread taking the BQL while
    holding it breaks lock-order (the notifier takes it under the BQL: ABBA)."""
    from dirtyproof.impl.world import ModelError

    d = Driver(HintTakesTheBql, _cfg("manual"))
    d.ap("mgmt", "start")
    d.until(lambda: _kind(d, "migration") == "setup_done")
    d.ap("guest-hint", 3)
    d.ap("iothread", None)
    with pytest.raises(ModelError, match="free_page_lock") as exc:
        d.ap("iothread", None)
    assert exc.value.invariant == "lock-order"
    assert "BQL -> free_page_lock -> bitmap_mutex -> slots_lock" in str(exc.value)


@pytest.mark.parametrize("mode", ["legacy", "manual", "initially_set"])
def test_reuse_after_the_hint_is_sent_again(mode):
    """A write after the hint was applied is logged (the page is write-protected again) and sent."""
    d = _hint_applied_then(Legacy, mode, reuse_before_apply=False)
    assert d.violation is None, d.violation
    assert int(d.w.dest_version[4]) == int(d.w.src_version[4]) == 2


class HintWithoutOwedClear(Legacy):
    """QEMU's hint handler without the owed chunk clears (as before clear_bmap existed)."""

    name = "hint-without-owed-clear"

    def migration_clear_memory_region_dirty_bitmap_range(self, w, rb, start, npages) -> Step:
        """No remote clear: the chunk's clear stays owed to the next send from it."""
        return
        yield


@pytest.mark.parametrize("mode", ["manual", "initially_set"])
def test_reuse_before_the_hint_is_applied_loses_it_in_manual_protect(mode):
    """Found with the flag on: the page was dirty and writable after the sync (manual protect
    re-protects only at the CLEAR), so the reuse write sets no new bit, and the hint's owed CLEAR
    then clears the bit the write relies on while the hint clears bmap: the write is lost. The
    shipped designs all share this handler. QEMU's own behaviour since 3143577d6a3f (6.1): the
    virtio spec lets the driver reuse a hinted page before the device used the hint and requires
    the write to be retained; evidence in docs/qemu-semantics.md section 13."""
    d = _hint_applied_then(Legacy, mode, reuse_before_apply=True)
    assert d.violation is not None and d.violation.invariant == "coverage" and d.violation.page == 4


@pytest.mark.parametrize("mode", ["legacy", "manual", "initially_set"])
def test_without_the_owed_clear_the_early_reuse_is_kept(mode):
    """The same schedule with the owed clear left out of the handler keeps the write (its L1 bit
    survives to the next sync): the clear is what loses it. In legacy KVM mode the GET already
    re-protected the page, so the write faulted and was logged either way."""
    d = _hint_applied_then(HintWithoutOwedClear, mode, reuse_before_apply=True)
    assert d.violation is None, d.violation
    assert int(d.w.dest_version[4]) == int(d.w.src_version[4]) == 2
    if mode == "legacy":
        assert _hint_applied_then(Legacy, mode, reuse_before_apply=True).violation is None


def test_random_runs_with_hinting_are_deterministic_and_hint():
    """The plain scheduler picks guest hints in a hinting world, and one seed replays exactly."""
    cfg = dataclasses.replace(Config(), free_page_hinting=True, kvm_mode="legacy")
    a = run(World(cfg, DESIGNS["periodic"]), RandomScheduler(5, 400), keep_log=False)
    b = run(World(cfg, DESIGNS["periodic"]), RandomScheduler(5, 400), keep_log=False)
    assert a.choices == b.choices and a.ok and a.completed
    assert any(c[0] == "guest-hint" for c in a.choices) and any(c[0] == "iothread" for c in a.choices)


# -- the hunt with the flag on: the manifest's hinting section ----------------------------------
import os  # noqa: E402

from dirtyproof.hunt import hunt  # noqa: E402
from dirtyproof.impl.config import KVM_MODES  # noqa: E402
from dirtyproof.checked import resolve  # noqa: E402
from dirtyproof.mutants import HINTING_MUTANTS, MUTANTS, load_manifest  # noqa: E402
from dirtyproof.spec import INVARIANTS, PROPERTY, RULE, RUNTIME_CHECKS  # noqa: E402

MANIFEST = load_manifest()
HINTING = MANIFEST["hinting"]
TIER = MANIFEST["tier"]
HINT_ENTRIES = sorted((world, name) for world in HINTING["worlds"] for name in HINTING[world])


def test_hinting_manifest_is_well_formed():
    """Each hinting world is a valid set of Config overrides with the flag on; each lists every
    shipped design and every hinting mutant, and nothing else; entries use the manifest's fields,
    and the mutant is unsafe in every world while some shipped design is safe in one (the check
    is not vacuous)."""
    from dirtyproof.hunt.runner import check_overrides

    ids = {inv.id: inv.kind for inv in INVARIANTS} | {k: PROPERTY for k in RUNTIME_CHECKS}
    assert not set(HINTING_MUTANTS) & set(MUTANTS)
    for world, overrides in HINTING["worlds"].items():
        assert check_overrides(overrides) and overrides["free_page_hinting"] is True
        assert overrides.get("kvm_mode", "legacy") in KVM_MODES
        assert set(HINTING[world]) == set(DESIGNS) | set(HINTING_MUTANTS), world
        for name, e in HINTING[world].items():
            assert e["verdict"] in ("safe", "unsafe"), name
            assert (e["found_by"] is None) == (e["verdict"] == "safe") == (e["property"] is None), name
            assert e["property"] is None or ids[e["property"]] == PROPERTY, name
            assert e["rule"] is None or ids[e["rule"]] == RULE, name
        for name in HINTING_MUTANTS:
            assert HINTING[world][name]["verdict"] == "unsafe", (world, name)
    assert any(HINTING[w][d]["verdict"] == "safe" for w in HINTING["worlds"] for d in DESIGNS)


def test_hinting_mutants_resolve_by_name():
    """A hinting mutant is a design name on every verb, like a corpus mutant."""
    for name, cls in HINTING_MUTANTS.items():
        assert resolve(name) is cls


def test_hunt_kvm_mode_needs_the_flag():
    """``hunt --kvm-mode`` without ``--free-page-hinting`` is bad input: one line, exit 2."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "dirtyproof.cli", "hunt", "--kvm-mode", "legacy"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DIRTYPROOF_SLOW"), reason="opt-in: DIRTYPROOF_SLOW=1")
@pytest.mark.parametrize("world,name", HINT_ENTRIES)
def test_hinting_hunt_gives_the_manifest_verdict(world, name, tmp_path):
    """The whole hunt at the quality tier's budget, every world with the hinting world's
    overrides, gives the recorded verdict, by the recorded search and property, within the
    recorded length (minutes per design: opt-in)."""
    e = HINTING[world][name]
    rep = hunt(resolve(name), examples=TIER["examples"], shrink_budget=TIER["shrink_budget"], profile="ci",
               schedules=TIER["schedules"], trace_dir=str(tmp_path), config_overrides=HINTING["worlds"][world])
    assert_hunt_matches(rep, e)


def test_background_v1_applies_a_stale_hint_after_its_background_syncs():
    """Found by the hunt with the flag on (legacy KVM mode, a fast-path page, where
    background-v1 is otherwise safe): the watcher's background syncs skip the precopy notifiers,
    so a hint queued before the guest reused the page is applied after a background sync put the
    reuse in iter_bmap; bmap then looks as if the page had been sent, and the next background
    sync's prologue drops it from iter_bmap. Replays from the saved trace."""
    from pathlib import Path

    from dirtyproof.checked import replay
    from dirtyproof.impl.trace import Trace

    t = Trace.load(Path(__file__).parent / "data" / "hinting-background-v1-stale-hint.json")
    assert t.config.free_page_hinting and t.config.kvm_mode == "legacy"
    w, res = replay(t)
    v = res.violation
    assert v is not None and v.invariant == "coverage" and w.block_of(v.page).fast_path
    hint = res.choices.index(["guest-hint", v.page])
    reuse = next(i for i in range(hint, len(res.choices)) if res.choices[i] == ["vcpu1", v.page])
    applied = next(i for i, r in enumerate(res.log) if r.label.startswith("iothread") and "hint applied" in r.label
                   and f"page {v.page})" in r.label)
    bg = [i for i, r in enumerate(res.log) if "background sync done" in r.label]
    assert hint < reuse < min(i for i in bg if i > reuse) < applied


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DIRTYPROOF_SLOW"), reason="opt-in: DIRTYPROOF_SLOW=1")
def test_explorer_exhausts_a_hinting_world_with_one_guest_move():
    """The explorer's guest moves include the hints of a hinting world: legacy on a 4-page
    fast-path block, one guest move (a hint or a write), is exhaustive with no violation
    (about 80 s at load 10; two moves, which the races above need, did not finish in 400 s)."""
    from dirtyproof.explore.bounds import Bounds, default_config
    from dirtyproof.explore.choices import enabled
    from dirtyproof.explore.engine import explore

    geo = Geometry((BlockSpec("ram0", 0, 4, 1),), clear_bmap_shift=0, word_bits=4)
    cfg = dataclasses.replace(default_config("manual"), geometry=geo, free_page_hinting=True)
    w = World(cfg, Legacy)
    w.step(["mgmt", "start"])
    _, env = enabled(w, (1, 0, 0, 0, 1), (1000,), [0, 1])
    assert ["guest-hint", 0] in [c for c, _ in env]
    res = explore(Legacy, cfg, Bounds(guest_writes=1, device_writes=0, clock_moves=0, cancels=0, moves=1))
    assert res.violation is None and not res.capped and not res.truncated
