"""Read a recorded run: QEMU's trace log (``-trace ...,file=`` with ``-msg timestamp=on``) and the
samples file (``query-migrate`` every 100 ms), into events, syncs and throttle changes."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# ``pid@sec.usec:name args``: the log backend's format with -msg timestamp=on (the pid is the thread id).
LINE = re.compile(r"^(\d+)@(\d+)\.(\d{1,6}):(\w+)\s?(.*)$")


class RecordError(Exception):
    """A trace or samples file that cannot be read as a recorded run."""


@dataclass
class Event:
    """One trace line."""

    line_no: int
    t: float
    tid: int
    name: str
    args: str
    raw: str

    def number(self) -> int | None:
        """The first integer among the arguments (dirty pages, a percentage)."""
        m = re.search(r"(\d+)", self.args)
        return int(m.group(1)) if m else None


@dataclass
class Sync:
    """One ``migration_bitmap_sync``: its start and end events and the period's running count."""

    index: int
    start: Event
    end: Event
    dirty_pages: int               # migration_bitmap_sync_end: num_dirty_pages_period so far
    by_timer: bool = False         # preceded by cpu_throttle_dirty_sync (the 5 s timer)
    after_vm_stop: bool = False    # the completion sync
    throttles: list["Throttle"] = field(default_factory=list)


@dataclass
class Throttle:
    """A throttle change: ``migration_throttle`` (and ``cpu_throttle_set N`` in 9.x+), with the
    percentage set (from the trace, or from the first ``query-migrate`` sample after it)."""

    event: Event
    pct: int | None
    pct_event: Event | None = None


@dataclass
class Record:
    """A recorded run, as the rules read it."""

    events: list[Event]
    samples: list[dict]               # {"t_send", "t_recv", "query": query-migrate's return}
    header: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    syncs: list[Sync] = field(default_factory=list)
    throttles: list[Throttle] = field(default_factory=list)
    states: list[Event] = field(default_factory=list)
    timer_syncs: list[Event] = field(default_factory=list)

    def left_active_at(self) -> float:
        """When the migration left the active state (cancelling, failed, completion), or never."""
        for ev in self.states:
            if ev.args.split()[-1:] and ev.args.split()[-1] in ("cancelling", "failed", "device", "completed"):
                return ev.t
        return float("inf")

    def ended_at(self) -> float:
        """When the migration reached a final state (completed, cancelled, failed), or never."""
        for ev in self.states:
            if ev.args.split()[-1:] and ev.args.split()[-1] in ("cancelled", "failed", "completed"):
                return ev.t
        return float("inf")

    @property
    def qemu_version(self) -> tuple[int, ...] | None:
        """QEMU's version from the samples header, if recorded."""
        v = self.header.get("qemu_version")
        try:
            return tuple(int(x) for x in v.split(".")) if v else None
        except ValueError:
            return None


def parse_trace(text: str, source: str = "trace") -> list[Event]:
    """The trace's events in file order; lines of other formats (QEMU's warnings) are skipped,
    but a trace with no timestamped event at all is an error."""
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        m = LINE.match(raw.strip())
        if not m:
            continue
        pid, sec, usec, name, args = m.groups()
        out.append(Event(i, int(sec) + int(usec.ljust(6, "0")) / 1e6, int(pid), name, args.strip(), raw.rstrip()))
    if not out:
        raise RecordError(f"{source}: no timestamped trace events (record with -msg timestamp=on "
                          f"and -trace events=FILE,file=OUT)")
    return out


def parse_samples(text: str, source: str = "samples") -> tuple[dict, list[dict], dict]:
    """The samples file: JSON lines; ``kind`` header/sample/result, or bare query-migrate replies
    with a ``t`` field (for runs recorded elsewhere)."""
    header, samples, result = {}, [], {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{source} line {i} is not JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise RecordError(f"{source} line {i} is not a JSON object")
        kind = obj.get("kind")
        if kind == "header":
            header = obj
        elif kind == "result":
            result = obj
        elif kind == "sample" or "status" in obj:
            if kind != "sample":
                t = obj.get("t")
                obj = {"t_send": t, "t_recv": t, "query": obj}
            if not isinstance(obj.get("t_send"), (int, float)) or not isinstance(obj.get("query"), dict):
                raise RecordError(f"{source} line {i}: a sample needs t_send/t_recv times and a query object")
            obj.setdefault("t_recv", obj["t_send"])
            samples.append(obj)
        else:
            raise RecordError(f"{source} line {i}: neither a header, a sample nor a result")
    return header, samples, result


def build_record(events: list[Event], header: dict, samples: list[dict], result: dict) -> Record:
    """Pair sync starts and ends, attach each throttle change to the sync whose tail made it."""
    rec = Record(events=events, samples=sorted(samples, key=lambda s: s["t_send"]), header=header, result=result)
    open_start: Event | None = None
    timer_pending = vm_stopped = False
    pending_throttle: Throttle | None = None
    for ev in events:
        if ev.name == "migration_bitmap_sync_start":
            open_start = ev
        elif ev.name == "migration_bitmap_sync_end" and open_start is not None:
            s = Sync(len(rec.syncs), open_start, ev, ev.number() or 0, by_timer=timer_pending,
                     after_vm_stop=vm_stopped)
            rec.syncs.append(s)
            open_start, timer_pending = None, False
        elif ev.name == "cpu_throttle_dirty_sync":
            timer_pending = True
            rec.timer_syncs.append(ev)
        elif ev.name == "migration_completion_vm_stop":
            vm_stopped = True
        elif ev.name == "migrate_set_state":
            rec.states.append(ev)
        elif ev.name == "migration_throttle":
            pending_throttle = Throttle(ev, None)
            rec.throttles.append(pending_throttle)
            if rec.syncs:
                rec.syncs[-1].throttles.append(pending_throttle)
        elif ev.name == "cpu_throttle_set" and pending_throttle is not None and pending_throttle.pct_event is None:
            pending_throttle.pct, pending_throttle.pct_event = ev.number(), ev
    _throttle_pct_from_samples(rec)
    return rec


def _throttle_pct_from_samples(rec: Record) -> None:
    """QEMU before 9.x traces no percentage: take it from the first sample read after the change,
    unless another change came before that sample was answered (then it stays unknown)."""
    for k, th in enumerate(rec.throttles):
        if th.pct is not None:
            continue
        nxt = rec.throttles[k + 1].event.t if k + 1 < len(rec.throttles) else float("inf")
        for s in rec.samples:
            if s["t_send"] > th.event.t:
                if s["t_recv"] < nxt and "cpu-throttle-percentage" in s["query"]:
                    th.pct = int(s["query"]["cpu-throttle-percentage"])
                break


def load_record(trace_path: str | Path, samples_path: str | Path | None) -> Record:
    """Read a recorded run from files (``RecordError`` with one line when they do not make one)."""
    try:
        text = Path(trace_path).read_text(errors="replace")
    except OSError as exc:
        raise RecordError(f"cannot read trace {trace_path}: {exc.strerror}") from None
    header, samples, result = {}, [], {}
    if samples_path is not None:
        try:
            stext = Path(samples_path).read_text()
        except OSError as exc:
            raise RecordError(f"cannot read samples {samples_path}: {exc.strerror}") from None
        header, samples, result = parse_samples(stext, str(samples_path))
    return build_record(parse_trace(text, str(trace_path)), header, samples, result)
