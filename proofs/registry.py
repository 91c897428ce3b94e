"""Which per-page encoding a design class gets: its own, a shipped design's (proofs/designs.py) or a
corpus mutant's (proofs/mutant_encodings.py). Composed here so neither of those imports the other's
registry."""
from __future__ import annotations

from dirtyproof.impl.designs.base import INTERFACE

from .designs import ENCODINGS
from .encoding import BaseEncoding


class NoEncoding(ValueError):
    """A design the per-page encoding does not cover (it changes steps the encoding cannot see)."""


def _with_mutants() -> dict:
    """ENCODINGS plus the mutant corpus' encodings (proofs/mutant_encodings.py), keyed by class."""
    try:
        import dirtyproof.mutants  # noqa: F401
    except ImportError:          # no corpus installed
        return ENCODINGS
    from .mutant_encodings import MUTANT_ENCODINGS   # a bug in it must not pass silently
    return {**ENCODINGS, **MUTANT_ENCODINGS}


def encoding_for(cls) -> BaseEncoding:
    """The encoding of design class ``cls``: its own (proofs/broken.py, shipped designs and corpus
    mutants) or, for a subclass that overrides no step, its nearest encoded ancestor."""
    enc = getattr(cls, "per_page_encoding", None)
    if enc is not None:
        return enc()
    encodings = _with_mutants()
    if cls in encodings:
        return encodings[cls]()
    for base in cls.__mro__[1:]:
        if base in encodings:
            overridden = sorted({m for k in cls.__mro__[:cls.__mro__.index(base)] for m, v in vars(k).items()
                                 if callable(v) and not m.startswith("__")} | {
                m for m in INTERFACE if any(m in vars(k) for k in cls.__mro__[:cls.__mro__.index(base)])})
            if overridden:
                raise NoEncoding(f"{cls.__qualname__} overrides {', '.join(overridden)}: no per-page "
                                 f"encoding for it (give the class a per_page_encoding)")
            return encodings[base]()
    raise NoEncoding(f"{cls.__qualname__} is not a Design subclass")
