"""The dirty-rate periods of a real run, reconstructed the way trace validation does it.

QEMU ends a period in ``migration_bitmap_sync`` when the sync ends more than 1000 ms after the
period began; the trace does not say which syncs did. So the checker keeps every state of the
spec consistent with the events seen so far (period start, running dirty count, high-rate count,
throttle percentage, transferred bytes at the period start), branching where the trace leaves a
choice open (a sync ending within the clock's precision of the 1 s mark; transferred bytes known
only between two ``query-migrate`` samples), and a run conforms when some state survives its
last sync (Cirstea, Kuppe, Loillier, Merz 2024: the observed events are a behaviour the spec
allows).

Three modes: ``counts`` (periods and running counts only), ``spec`` (the throttle may or may not
find a period high, but changes only at the second high period since the previous change, by the
model's steps), ``model`` (the model's ``migration_trigger_throttle`` decides, fed the observed
dirty pages and transferred bytes).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .model import predict_period_end
from .trace import Record, Sync

PERIOD_S = 1.0
CLOCK_EPS_S = 0.002       # ms truncation of QEMU's clock against the trace's microseconds
UNKNOWN_BYTES = 1 << 62
MAX_STATES = 4096


@dataclass(frozen=True)
class State:
    """One state of the spec's throttle bookkeeping after a sync."""

    period_start: float
    running: int              # num_dirty_pages_period after the last sync
    high_cnt: int
    pct: int
    xfer_prev: tuple[int, int]   # bounds of transferred bytes when the period began


@dataclass
class Outcome:
    """The search's verdict: conforming, or where and why every state died."""

    ok: bool
    failed_at: Sync | None = None
    reasons: list[str] = field(default_factory=list)
    boundaries: list[int] = field(default_factory=list)   # sync indices that ended a period (one witness)
    max_states: int = 0


class TransferredBounds:
    """Bounds of ``ram.transferred`` at a time, from the samples (it never decreases)."""

    def __init__(self, samples: list[dict]):
        pts = [(s["t_send"], s["t_recv"], int(s["query"]["ram"]["transferred"]))
               for s in samples if isinstance(s["query"].get("ram"), dict) and "transferred" in s["query"]["ram"]]
        self.recv = sorted((r, v) for _, r, v in pts)
        self.send = sorted((t, v) for t, _, v in pts)

    def at(self, t: float) -> tuple[int, int]:
        """(lowest, highest) value the counter can have had at time ``t``."""
        i = bisect.bisect_right(self.recv, (t, UNKNOWN_BYTES))
        lo = self.recv[i - 1][1] if i else 0
        j = bisect.bisect_left(self.send, (t, -1))
        hi = self.send[j][1] if j < len(self.send) else UNKNOWN_BYTES
        return lo, max(lo, hi)


def _outcomes(mode, design, config, st: State, s: Sync, lo: int, hi: int):
    if mode == "spec":
        # the period may be high or not: a huge transfer makes it low, none makes it high
        cands = [(s.dirty_pages, 0), (s.dirty_pages, UNKNOWN_BYTES)]
    else:
        x_lo = max(0, lo - st.xfer_prev[1])
        x_hi = max(x_lo, hi - st.xfer_prev[0])
        cands = [(s.dirty_pages, x_lo), (s.dirty_pages, x_hi)]
    seen = {}
    for dirty, xfer in cands:
        p = predict_period_end(design, config, throttle_pct=st.pct, dirty_rate_high_cnt=st.high_cnt,
                               num_dirty_pages_period=dirty, bytes_xfer_period=xfer)
        seen[(p.dirty_rate_high_cnt, p.throttle_pct, p.throttled)] = (p, xfer)
    return list(seen.values())


def search(rec: Record, design, config, mode: str = "model", max_new: int | None = None) -> Outcome:
    """Keep every spec state consistent with the trace; see the module's docstring. ``max_new``
    bounds the new dirty pages one sync can find (the hot set and a little more)."""
    if not rec.syncs:
        return Outcome(ok=True)
    bounds = TransferredBounds(rec.samples)
    stop_t = rec.left_active_at()
    first = rec.syncs[0]
    states: dict[State, list[int]] = {State(first.start.t, 0, 0, 0, (0, 0)): []}
    peak = 1
    for s in rec.syncs:
        nxt: dict[State, list[int]] = {}
        reasons: list[str] = []
        e = s.end.t
        if s.start.t > stop_t and mode != "counts":
            # Once the migration leaves the active state, migration_iteration_finish calls
            # cpu_throttle_stop without the BQL: a sync running then may see the throttle off.
            states = {**states, **{State(st.period_start, st.running, st.high_cnt, 0, st.xfer_prev): w
                                   for st, w in states.items()}}
        for st, witness in states.items():
            if s.dirty_pages < st.running:
                reasons.append(f"running count fell from {st.running} to {s.dirty_pages} "
                               f"without a period boundary")
                continue
            if max_new is not None and s.dirty_pages - st.running > max_new:
                reasons.append(f"sync {s.index + 1} found {s.dirty_pages - st.running} new dirty pages, "
                               f"more than the {max_new} the guest can dirty")
                continue
            elapsed = e - st.period_start
            options = []
            if elapsed > PERIOD_S - CLOCK_EPS_S:
                options.append(True)
            if elapsed < PERIOD_S + CLOCK_EPS_S:
                options.append(False)
            for boundary in options:
                if not boundary:
                    if s.throttles and mode != "counts":
                        reasons.append(f"a throttle change {elapsed * 1000:.0f} ms into a period, "
                                       f"before the 1 s mark")
                        continue
                    nxt.setdefault(State(st.period_start, s.dirty_pages, st.high_cnt, st.pct, st.xfer_prev), witness)
                    continue
                lo, hi = bounds.at(e)
                if mode == "counts":
                    nxt.setdefault(State(e, 0, 0, 0, (lo, hi)), witness + [s.index])
                    continue
                for p, xfer in _outcomes(mode, design, config, st, s, lo, hi):
                    obs = s.throttles
                    if p.throttled:
                        if not obs:
                            reasons.append(_say(mode, st, s, xfer, f"throttle to {p.throttle_pct}%", "no change"))
                            continue
                        if obs[0].pct is not None and obs[0].pct != p.throttle_pct:
                            reasons.append(_say(mode, st, s, xfer, f"throttle to {p.throttle_pct}%",
                                                f"{obs[0].pct}%"))
                            continue
                    elif obs:
                        seen = f"{obs[0].pct}%" if obs[0].pct is not None else "a change"
                        reasons.append(_say(mode, st, s, xfer, "no change", seen))
                        continue
                    nxt.setdefault(State(e, 0, p.dirty_rate_high_cnt, p.throttle_pct, (lo, hi)),
                                   witness + [s.index])
        if not nxt:
            return Outcome(ok=False, failed_at=s, reasons=sorted(set(reasons)), max_states=peak)
        if len(nxt) > MAX_STATES:      # keep the search bounded; the oldest period starts go first
            nxt = dict(sorted(nxt.items(), key=lambda kv: -kv[0].period_start)[:MAX_STATES])
        states = nxt
        peak = max(peak, len(states))
    witness = next(iter(states.values()))
    return Outcome(ok=True, boundaries=witness, max_states=peak)


def _say(mode, st: State, s: Sync, xfer: int, predicted: str, observed: str) -> str:
    who = "the model" if mode == "model" else "the spec"
    xfer_s = "unknown" if xfer >= UNKNOWN_BYTES // 2 else f"{xfer} B"
    return (f"{who} predicts {predicted} at the period ending with sync {s.index + 1} "
            f"(dirty pages {s.dirty_pages}, transferred in period {xfer_s}, throttle {st.pct}%, "
            f"high periods so far {st.high_cnt}); observed {observed}")
