"""Argument helpers shared by the verbs: design names and positive numbers."""
from __future__ import annotations

import argparse

from dirtyproof.checked import resolve
from dirtyproof.impl.designs import DESIGNS, DesignError

from .errors import UserError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return v


def design_class(spec: str):
    """A design class from a name or ``module:Class``; :class:`UserError` otherwise."""
    try:
        return resolve(spec)
    except DesignError as exc:
        raise UserError(str(exc)) from None


def canonical_spec(spec: str, cls=None) -> str:
    """How traces and reports name the design ``spec``: as given, except that a design loaded
    from a file is named by its absolute path, so a trace replays from any folder."""
    cls = cls if cls is not None else design_class(spec)
    module, _, attr = spec.rpartition(":")
    if module and (module.endswith(".py") or "/" in module):
        return f"{cls.__module__}:{attr}"
    return spec


def design_specs(spec: str | None) -> list[str]:
    """The design names a verb works on: the one named (canonical), or every shipped design."""
    if spec is None:
        return list(DESIGNS)
    return [canonical_spec(spec)]


def names_a_configuration(text: str) -> bool:
    """Whether ``--config TEXT`` names a configuration as prove does (``manual/mixed``) rather
    than a JSON file of Config fields: one slash, no ``.json``, and no such file."""
    from pathlib import Path
    return text.count("/") == 1 and not text.endswith(".json") and not Path(text).exists()

