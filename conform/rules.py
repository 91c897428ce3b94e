"""The named rules a recorded real migration is checked against, each with a verdict.

Every rule returns a ``Verdict``: ``holds``, ``broken`` or ``n/a`` (with why), and on a break the
trace lines and what the spec or the model predicted.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from dirtyproof.impl.designs import Periodic

from .model import ThrottleSettings, design_for, throttle_ladder
from .periods import search
from .trace import Record

TIMER_PERIOD_S = 5.0          # CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS
TIMER_SLACK_S = 0.5           # the main loop's latency in firing the timer (it waits for the BQL)
STATE_MOVES = {None: {"setup"}, "none": {"setup"}, "setup": {"active", "failed", "cancelling"},
               "active": {"completed", "device", "pre-switchover", "cancelling", "failed"},
               "pre-switchover": {"device", "cancelling", "failed"},
               "device": {"completed", "failed", "cancelling"},
               "cancelling": {"cancelled", "failed"}}
NONHOT_SLACK_PAGES = 64       # pages outside the hot set a sync may find (stack, firmware)


@dataclass
class Verdict:
    """One rule's verdict on one run."""

    rule: str
    verdict: str                     # "holds", "broken", "n/a"
    detail: str = ""
    evidence: list[str] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        """Whether the rule broke."""
        return self.verdict == "broken"


def _lines(*events) -> list[str]:
    return [f"  trace line {e.line_no}: {e.raw}" for e in events if e is not None]


def rule_end_to_end(rec: Record) -> Verdict:
    """After completion the destination's memory equals the source's at the stop, page by page."""
    mem = rec.result.get("memory")
    if not mem:
        return Verdict("end-to-end-memory", "n/a", f"no memory comparison (outcome: {rec.result.get('outcome', 'unknown')})")
    n = mem.get("differing_count", len(mem.get("differing", [])))
    if n:
        pages = ", ".join(f"0x{p * 4096:x}" for p in mem["differing"][:8])
        return Verdict("end-to-end-memory", "broken", f"{n} of {mem['pages']} pages differ between source and destination",
                       [f"  first differing guest-physical pages: {pages}"])
    return Verdict("end-to-end-memory", "holds", f"all {mem['pages']} pages equal")


def rule_guest_pattern(rec: Record) -> Verdict:
    """The source's dump holds the guest's pattern: the dumps compared are the guest's live memory."""
    pat = rec.result.get("pattern")
    if not pat:
        return Verdict("guest-pattern", "n/a", "no dump")
    if pat.get("ok"):
        return Verdict("guest-pattern", "holds", f"every hot page holds pass {pat['pass']} or {pat['pass'] - 1}")
    return Verdict("guest-pattern", "broken", "the source dump does not hold the guest's pattern",
                   [f"  torn pages {pat.get('torn_pages')}, stale pages {pat.get('stale_pages')}"])


def rule_guest_self_check(rec: Record) -> Verdict:
    """The guest, resumed on the destination, finds every page as it left it (no 'X' on its console)."""
    g = rec.result.get("guest")
    if not g:
        return Verdict("guest-self-check", "n/a", "the guest did not resume on a destination")
    if g.get("checks") is False:
        return Verdict("guest-self-check", "n/a", "the guest was built without its check (--no-guest-check)")
    if g.get("lost"):
        return Verdict("guest-self-check", "broken", "the guest found a lost page on the destination",
                       [f"  console: {g.get('console', '')[:120]!r}"])
    if g.get("dots", 0) < 2:
        return Verdict("guest-self-check", "broken", "the guest did not complete a checked pass on the destination",
                       [f"  console: {g.get('console', '')!r}, status {g.get('status')}"])
    return Verdict("guest-self-check", "holds", f"{g['dots']} checked passes after resume, no lost page")


def rule_states(rec: Record) -> Verdict:
    """``migrate_set_state`` moves only along QEMU's migration state machine."""
    prev = None
    for ev in rec.states:
        new = ev.args.split()[-1] if ev.args else ""
        if new not in STATE_MOVES.get(prev, set()):
            return Verdict("migration-states", "broken", f"state {prev} -> {new} is not a move of the state machine",
                           _lines(ev))
        prev = new
    return Verdict("migration-states", "holds", " -> ".join(e.args.split()[-1] for e in rec.states) or "no states")


def rule_sync_count(rec: Record) -> Verdict:
    """``dirty-sync-count`` in every sample agrees with the syncs traced by then, and the
    completion (if any) made exactly one sync after the VM stopped."""
    starts = [s.start.t for s in rec.syncs]
    for smp in rec.samples:
        ram = smp["query"].get("ram")
        if not isinstance(ram, dict) or "dirty-sync-count" not in ram:
            continue
        c = int(ram["dirty-sync-count"])
        lo = bisect.bisect_right(starts, smp["t_send"])
        hi = bisect.bisect_right(starts, smp["t_recv"]) + 1   # QEMU counts just before it traces the start
        if not lo <= c <= hi:
            return Verdict("sync-count", "broken",
                           f"query-migrate said dirty-sync-count {c} where the trace has {lo}..{hi} syncs",
                           [f"  sample at {smp['t_send']:.6f}: {ram}"])
    after = [s for s in rec.syncs if s.after_vm_stop]
    status = rec.result.get("outcome", "")
    if status.startswith("completed") and len(after) != 1:
        return Verdict("sync-count", "broken", f"{len(after)} syncs after migration_completion_vm_stop, expected 1",
                       _lines(*(s.end for s in after)))
    return Verdict("sync-count", "holds", f"{len(rec.syncs)} syncs, every sample agrees")


def rule_period_counts(rec: Record, design, config) -> Verdict:
    """``migration_bitmap_sync_end`` reports a running count that only resets at a >= 1 s period
    boundary; no sync finds more new pages than the hot set (plus a little outside it)."""
    hot = rec.header.get("guest", {}).get("hot_bytes")
    cap = hot // 4096 + NONHOT_SLACK_PAGES if hot else None
    out = search(rec, design, config, mode="counts", max_new=cap)
    if not out.ok:
        s = out.failed_at
        return Verdict("period-dirty-pages", "broken", out.reasons[0] if out.reasons else "no period fits",
                       _lines(s.start, s.end) + [f"  {r}" for r in out.reasons[1:4]])
    return Verdict("period-dirty-pages", "holds",
                   f"{len(out.boundaries)} periods over {len(rec.syncs)} syncs")


def rule_throttle_spec(rec: Record, design, config, settings: ThrottleSettings) -> Verdict:
    """The throttle's percentages climb initial, +increment, ... capped at the maximum, and each
    change comes at the second high-dirty-rate period since the previous one."""
    if not settings.auto_converge:
        if rec.throttles:
            return Verdict("throttle-steps", "broken", "a throttle change with auto-converge off",
                           _lines(rec.throttles[0].event))
        return Verdict("throttle-steps", "holds", "auto-converge off, no throttle change")
    stop_t = rec.left_active_at()
    active = [th for th in rec.throttles if th.event.t < stop_t]   # later ones: see sync-after-stop
    ladder = throttle_ladder(design, config, len(active))
    for k, (th, want) in enumerate(zip(active, ladder)):
        if th.pct is not None and th.pct != want:
            return Verdict("throttle-steps", "broken",
                           f"throttle change {k + 1} set {th.pct}%, the spec's step {k + 1} is {want}%",
                           _lines(th.event, th.pct_event))
    out = search(rec, design, config, mode="spec")
    if not out.ok:
        s = out.failed_at
        return Verdict("throttle-steps", "broken", out.reasons[0] if out.reasons else "no period fits",
                       _lines(s.start, s.end, *(t.event for t in s.throttles)) + [f"  {r}" for r in out.reasons[1:4]])
    pcts = [th.pct for th in rec.throttles]
    return Verdict("throttle-steps", "holds", f"{len(pcts)} changes: {_ladder_text(pcts)}")


def rule_throttle_model(rec: Record, design, config, settings: ThrottleSettings) -> Verdict:
    """The model's ``migration_trigger_throttle``, fed each period's observed dirty pages and
    transferred bytes, predicts every observed change and its percentage, at the same period."""
    if not rec.samples:
        return Verdict("throttle-model", "n/a", "no samples: the transferred bytes are unknown")
    out = search(rec, design, config, mode="model")
    if not out.ok:
        s = out.failed_at
        return Verdict("throttle-model", "broken", out.reasons[0] if out.reasons else "no period fits",
                       _lines(s.start, s.end, *(t.event for t in s.throttles)) + [f"  {r}" for r in out.reasons[1:4]])
    return Verdict("throttle-model", "holds",
                   f"the model predicts all {len(rec.throttles)} changes at their periods ({len(out.boundaries)} periods)")


def rule_timer_sync(rec: Record, periodic: bool) -> Verdict:
    """9.2+: the 5 s timer syncs (``cpu_throttle_dirty_sync``) only when the sync count is above 1
    and no sync started since the previous tick, at least 5 s earlier; before 9.2 it never does."""
    if not periodic:
        if rec.timer_syncs:
            return Verdict("timer-sync", "broken", "a timer sync in a QEMU without the periodic sync",
                           _lines(rec.timer_syncs[0]))
        return Verdict("timer-sync", "n/a", "legacy design (QEMU before 9.2): no timer")
    starts = [s.start.t for s in rec.syncs]
    for ev in rec.timer_syncs:
        before = bisect.bisect_left(starts, ev.t)
        if before <= 1:
            return Verdict("timer-sync", "broken", f"a timer sync with dirty-sync-count {before}", _lines(ev))
        # The tick remembers the count after its own sync, so only the migration thread's syncs
        # since the previous tick (at least 5 s ago) move it.
        moved = [s for s in rec.syncs[:before] if not s.by_timer and ev.t - s.start.t < TIMER_PERIOD_S]
        if moved:
            last = moved[-1]
            return Verdict("timer-sync", "broken",
                           f"a timer sync {ev.t - last.start.t:.3f} s after sync {last.index + 1}: "
                           f"the count moved since the previous tick", _lines(last.start, ev))
    return Verdict("timer-sync", "holds", f"{len(rec.timer_syncs)} timer syncs, each after a stuck count")


def rule_sync_gap(rec: Record, periodic: bool, auto_converge: bool) -> Verdict:
    """9.2+ with auto-converge: from the second sync on, no gap between syncs exceeds two timer
    periods (a sync just after a tick is followed by one at the tick after next)."""
    if not periodic or not auto_converge:
        return Verdict("sync-gap", "n/a", "needs the periodic design (QEMU 9.2+) and auto-converge")
    limit = 2 * TIMER_PERIOD_S + TIMER_SLACK_S
    ends = [e for e in rec.states if e.args.split()[-1:] and e.args.split()[-1] in ("cancelling", "completed", "failed", "device")]
    stop_t = ends[0].t if ends else rec.events[-1].t
    marks = [s.start for s in rec.syncs[1:]]
    worst = 0.0
    for a, b in zip(marks, marks[1:]):
        worst = max(worst, b.t - a.t)
        if b.t - a.t > limit:
            return Verdict("sync-gap", "broken", f"{b.t - a.t:.3f} s between syncs, more than {limit:.1f} s",
                           _lines(a, b))
    if marks and stop_t - marks[-1].t > limit:
        return Verdict("sync-gap", "broken", f"no sync in the last {stop_t - marks[-1].t:.3f} s of the migration",
                       _lines(marks[-1]))
    return Verdict("sync-gap", "holds", f"longest gap {worst:.3f} s (limit {limit:.1f} s)")


def rule_stopped_timer(rec: Record, periodic: bool, settings: ThrottleSettings) -> Verdict:
    """The model (``Periodic.stop_threads``, with the BQL, then the throttle reset): once the
    migration has ended the timer never fires, and the throttle, once stopped, stays off. A tick
    between "cancelling" and the end is allowed (the migration thread has not stopped it yet)."""
    stop_t = rec.left_active_at()
    end_t = rec.ended_at()
    if stop_t == float("inf"):
        return Verdict("stopped-timer", "n/a", "the migration never left the active state")
    late = [ev for ev in rec.timer_syncs if ev.t > end_t]
    before = [th for th in rec.throttles if th.event.t < stop_t]
    # a late tick that set the *initial* percentage again found the throttle already stopped:
    # it restarted it after migration_iteration_finish's cpu_throttle_stop, and nothing stops it again
    restarted = [th for th in rec.throttles if th.event.t > stop_t and before and th.pct == settings.cpu_throttle_initial
                 and not _completion_sync_throttle(rec, th)]
    if not late and not restarted:
        return Verdict("stopped-timer", "holds", "nothing fired after the migration ended")
    ends = [e for e in rec.states if e.t >= stop_t][:2]
    what = []
    if restarted:
        what.append(f"a timer tick restarted the throttle at {restarted[0].pct}% after it was stopped")
    if late:
        what.append(f"{len(late)} timer sync(s) after the migration ended ({late[0].t - end_t:.3f} s later)")
    evidence = _lines(*ends, *late[:2], *(th.event for th in restarted[:1]), *(th.pct_event for th in restarted[:1]))
    return Verdict("stopped-timer", "broken", "; ".join(what), evidence)


def rule_source_survives(rec: Record) -> Verdict:
    """The source QEMU outlives its migration: it never dies mid-migration, and (when the run
    lingered after the end) it is still alive then."""
    lost = rec.header.get("source_lost") or rec.header.get("source_lost_after_end")
    code = rec.header.get("source_exited_after_end")
    if lost is None and code is None:
        lingered = any(s.get("after_end") for s in rec.samples)
        return Verdict("source-survives", "holds" if lingered else "n/a",
                       "the source answered after the end" if lingered else "the run did not linger after the end")
    rc = (lost or {}).get("returncode", code)
    log = [f"  source log: {line}" for line in rec.header.get("src_log_tail", [])[-2:]]
    when = "during the migration" if rec.header.get("source_lost") else "after the migration ended"
    return Verdict("source-survives", "broken", f"the source QEMU died {when} (exit status {rc})",
                   log + [f"  trace line {e.line_no}: {e.raw}" for e in rec.timer_syncs[-1:]])


def _completion_sync_throttle(rec: Record, th) -> bool:
    """A throttle change made by the completion sync itself (the guest is stopped: harmless)."""
    return any(s.after_vm_stop and th in s.throttles for s in rec.syncs)


def _ladder_text(pcts) -> str:
    return ", ".join("?" if p is None else str(p) for p in pcts[:12]) + (" ..." if len(pcts) > 12 else "")


def check_record(rec: Record, version: tuple[int, ...] | None = None) -> list[Verdict]:
    """Every rule on one recorded run."""
    version = version or rec.qemu_version
    design = design_for(version)
    periodic = issubclass(design, Periodic)       # 9.2 and later: the 5 s timer sync
    auto = bool(rec.header.get("auto_converge", True))
    settings = ThrottleSettings.from_query(rec.header.get("migrate_parameters"), auto)
    config = settings.config()
    return [rule_end_to_end(rec), rule_guest_pattern(rec), rule_guest_self_check(rec), rule_states(rec),
            rule_sync_count(rec), rule_period_counts(rec, design, config),
            rule_throttle_spec(rec, design, config, settings), rule_throttle_model(rec, design, config, settings),
            rule_timer_sync(rec, periodic), rule_sync_gap(rec, periodic, auto), rule_stopped_timer(rec, periodic, settings),
            rule_source_survives(rec)]
