"""The spec itself: ids are unique, every invariant is documented, and the generated docs are current."""
from pathlib import Path

from dirtyproof.spec import INVARIANTS, applicable
from dirtyproof.cli.docs import full_markdown as invariants_markdown
from dirtyproof.impl.designs import DESIGNS

ROOT = Path(__file__).resolve().parents[1]


def test_ids_unique_and_documented():
    ids = [inv.id for inv in INVARIANTS]
    assert len(ids) == len(set(ids))
    for inv in INVARIANTS:
        assert inv.statement and inv.title and inv.predicate.__doc__


def test_generated_docs_are_current():
    """docs/invariants.md is what `dirtyproof spec` prints: regenerate it when the spec changes."""
    assert (ROOT / "docs" / "invariants.md").read_text() == invariants_markdown()


def test_scope_per_design():
    v1 = {i.id for i in applicable(DESIGNS["background-v1"]())}
    legacy = {i.id for i in applicable(DESIGNS["legacy"]())}
    assert "bg-sync-no-bmap" in v1 and "bg-sync-no-bmap" not in legacy
    assert "period-counter" in legacy and "period-counter" not in v1
