"""docs/invariants.md composed from the parts that own its facts: the spec's properties and rules,
then the prover's inductive invariant (the spec does not import the prover)."""
from __future__ import annotations


def full_markdown() -> str:
    """What ``dirtyproof spec`` prints and docs/invariants.md holds."""
    from dirtyproof.proofs.inductive import conjuncts_markdown
    from dirtyproof.spec.docs import invariants_markdown

    return invariants_markdown(conjuncts_markdown())
