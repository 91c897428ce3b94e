"""Operators that work on plain Python values and on Z3 terms alike.

The per-page encoding is written once with these; evaluated on Python booleans/ints it is the
concrete successor function the conformance test compares with the reference model, and on Z3
terms it is the transition relation the prover reasons about.
"""
from __future__ import annotations

import z3


def _sym(xs) -> bool:
    return any(isinstance(x, z3.ExprRef) for x in xs)


def AND(*xs):
    """Conjunction."""
    return z3.And(*xs) if _sym(xs) else all(xs)


def OR(*xs):
    """Disjunction."""
    return z3.Or(*xs) if _sym(xs) else any(xs)


def NOT(x):
    """Negation."""
    return z3.Not(x) if _sym((x,)) else not x


def IMP(a, b):
    """Implication."""
    return z3.Implies(a, b) if _sym((a, b)) else (not a) or bool(b)


def ITE(c, a, b):
    """If-then-else (both branches are values, not thunks)."""
    if _sym((c, a, b)):
        if isinstance(a, bool):
            a = z3.BoolVal(a)
        if isinstance(b, bool):
            b = z3.BoolVal(b)
        return z3.If(c, a, b)
    return a if c else b


def EQ(a, b):
    """Equality."""
    return a == b


def IN(x, values):
    """``x`` is one of ``values``."""
    return OR(*[x == v for v in values])
