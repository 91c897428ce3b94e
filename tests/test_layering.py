"""The parts' import graph (issue 8 §5): the model does not import the checks, the corpus or any
engine; the spec does not import the model or the prover; proofs/designs.py and
proofs/mutant_encodings.py do not import each other. Read from the source (every import
statement, also those inside functions), so a lazy import cannot slip through."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# part -> the parts of dirtyproof it must not import
FORBIDDEN = {
    "impl": {"spec", "mutants", "proofs", "hunt", "explore", "cli", "checked", "conform"},
    "spec": {"impl", "proofs", "mutants", "hunt", "explore", "cli", "checked", "conform"},
}


def _imports(path: Path):
    """(line, dotted module) of every import in ``path``, relative ones made absolute."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(ROOT).with_suffix("")
    package = ["dirtyproof", *rel.parts[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield node.lineno, mod
            for a in node.names:  # "from dirtyproof import spec"
                yield node.lineno, f"{mod}.{a.name}"


def _part(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "dirtyproof" else None


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_part_does_not_import_forbidden_parts(part):
    bad = []
    for path in sorted((ROOT / part).rglob("*.py")):
        for line, mod in _imports(path):
            if _part(mod) in FORBIDDEN[part]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {mod}")
    assert not bad, "\n".join(bad)


def test_no_cycle_between_prover_designs_and_mutant_encodings():
    def imports(a, b):
        return f"dirtyproof.proofs.{b}" in {m for _, m in _imports(ROOT / "proofs" / f"{a}.py")}

    assert not (imports("designs", "mutant_encodings") and imports("mutant_encodings", "designs"))


def test_the_check_rejects_a_forbidden_import(tmp_path, monkeypatch):
    """Non-vacuity: the scan sees a lazy import inside a function."""
    fake = ROOT / "impl" / "_layering_probe.py"
    fake.write_text("def f():\n    from dirtyproof.spec import Checker\n")
    try:
        with pytest.raises(AssertionError, match="_layering_probe"):
            test_part_does_not_import_forbidden_parts("impl")
    finally:
        fake.unlink()
