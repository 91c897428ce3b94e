"""``check``'s results for CI systems: JUnit XML (one test case per design, engine and
configuration, the counterexample in the failure text) and JSON (the same results as data)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    """One engine's verdict on one design in one configuration, against its expectation."""

    design: str
    engine: str             # prover, runs, counting, hunt, explore, verdict
    config: str
    expected: str
    got: str
    ok: bool
    seconds: float
    detail: str = ""        # the counterexample or the reason, when there is one
    trace: str | None = None


def _xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold."""
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)


def write_junit(rows: list[Row], path: Path, seconds: float, hunt_budget: str | None = None) -> Path:
    """Write ``rows`` as a JUnit XML report: a ``testsuite`` per design, a ``testcase`` per engine
    and configuration; a mismatch is a ``failure`` whose text holds the counterexample. The hunt's
    budget, in words, is a property of the report."""
    suites = ET.Element("testsuites", name="dirtyproof check", tests=str(len(rows)),
                        failures=str(sum(not r.ok for r in rows)), time=f"{seconds:.3f}")
    if hunt_budget:
        props = ET.SubElement(suites, "properties")
        ET.SubElement(props, "property", name="hunt_budget", value=_xml_text(hunt_budget))
    for design in dict.fromkeys(r.design for r in rows):
        mine = [r for r in rows if r.design == design]
        suite = ET.SubElement(suites, "testsuite", name=design, tests=str(len(mine)),
                              failures=str(sum(not r.ok for r in mine)),
                              time=f"{sum(r.seconds for r in mine):.3f}")
        for r in mine:
            case = ET.SubElement(suite, "testcase", classname=f"{design}.{r.engine}", name=r.config,
                                 time=f"{r.seconds:.3f}")
            body = "\n".join(x for x in (r.detail, f"trace: {r.trace}" if r.trace else "") if x)
            if not r.ok:
                fail = ET.SubElement(case, "failure", message=_xml_text(f"expected {r.expected}, got {r.got}"),
                                     type="verdict")
                fail.text = _xml_text(body)
            elif body:
                ET.SubElement(case, "system-out").text = _xml_text(body)
    tree = ET.ElementTree(suites)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_json(rows: list[Row], path: Path, seconds: float, ok: bool, hunt_budget: dict | None = None) -> Path:
    """Write ``rows`` as JSON: ``{"dirtyproof_check": 1, "ok": ..., "seconds": ..., "hunt_budget":
    {"schedules", "examples", "seconds"}, "results": [...]}`` (the budget each design's hunt had,
    so a reader can tell a work-budgeted, reproducible hunt from a wall-clock one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dirtyproof_check": 1, "ok": ok, "seconds": round(seconds, 3),
                                "hunt_budget": hunt_budget, "results": [asdict(r) for r in rows]}, indent=1) + "\n")
    return path


__all__ = ["Row", "write_json", "write_junit"]
