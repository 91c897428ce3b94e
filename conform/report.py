"""Print a run's verdicts: one line per rule, the evidence under a broken one, then a summary."""
from __future__ import annotations

from .model import design_for
from .trace import Record


def summary_line(rec: Record, version: tuple[int, ...] | None = None) -> str:
    """What ran: QEMU version (``version`` overrides the record's), outcome, syncs, throttle, times."""
    last = next((s["query"] for s in reversed(rec.samples) if "ram" in s["query"]), {})
    version = version or rec.qemu_version
    v = ".".join(map(str, version)) if version else "unknown"
    parts = [f"QEMU {v} ({design_for(version).name} design)",
             f"outcome {rec.result.get('outcome') or last.get('status', 'unknown')}",
             f"{len(rec.syncs)} syncs", f"{len(rec.throttles)} throttle changes"]
    if "total-time" in last:
        parts.append(f"total {last['total-time']} ms")
    if "downtime" in last:
        parts.append(f"downtime {last['downtime']} ms")
    return ", ".join(parts)


def print_report(rec: Record, verdicts, quiet: bool = False, version: tuple[int, ...] | None = None) -> None:
    """The report on stdout."""
    print(summary_line(rec, version))
    for v in verdicts:
        if quiet and not v.broken:
            continue
        print(f"  {v.verdict.upper():<6} {v.rule}: {v.detail}")
        if v.broken:
            for line in v.evidence:
                print(f"    {line.strip()}")
    broken = [v.rule for v in verdicts if v.broken]
    held = sum(v.verdict == "holds" for v in verdicts)
    print(f"{held} rules hold, {len(broken)} broken" + (f": {', '.join(broken)}" if broken else ""))
