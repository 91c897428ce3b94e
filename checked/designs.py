"""Naming a design: a shipped one, a corpus mutant, or a user's ``module:Class``.

The model's registry (:func:`dirtyproof.impl.designs.resolve`) knows the shipped designs and
user classes; the mutant corpus is composed in here, so ``impl/`` does not import it.
"""
from __future__ import annotations

from dirtyproof.impl.designs import Design
from dirtyproof.impl.designs import resolve as resolve_model


def resolve(spec: str) -> type[Design]:
    """A design class from a shipped name, a corpus mutant's name (also the free-page-hinting
    and multifd mutants), ``module:Class`` or
    ``path/to/file.py:Class`` (:class:`dirtyproof.impl.designs.DesignError` otherwise)."""
    from dirtyproof.mutants import HINTING_MUTANTS, MULTIFD_MUTANTS, MUTANTS, RING_MUTANTS

    return resolve_model(spec, extra={**MUTANTS, **HINTING_MUTANTS, **MULTIFD_MUTANTS, **RING_MUTANTS})
