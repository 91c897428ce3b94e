"""The user designs are well-formed, and every broken one has a seeded run that breaks its property.

These run on the model as it is; they make no claim about the checker's verdicts (README.md
records those). A witness that stops failing after a model change is to be found again with
``python -m tests.user_designs.observe`` (see its docstring), not deleted.
"""
from __future__ import annotations

import pytest

from dirtyproof.impl.designs import check_interface
from dirtyproof.spec import BY_ID, RUNTIME_CHECKS

from . import ALL, BROKEN, CORRECT, WITNESSES
from .observe import extend, one


def test_the_set():
    assert len(CORRECT) >= 5 and len(BROKEN) >= 6
    names = [c.name for c in ALL]
    assert len(set(names)) == len(names)
    assert len({c.layer for c in BROKEN}) >= 6
    for cls in ALL:
        check_interface(cls)
        assert cls.__doc__ and "Modelled on" in cls.__doc__, cls.name
        assert cls.summary and cls.layer
    for cls in CORRECT:
        assert cls.expected == "safe", cls.name
    for cls in BROKEN:
        assert cls.expected == "unsafe", cls.name
        assert cls.breaks in BY_ID or cls.breaks in RUNTIME_CHECKS, cls.name


@pytest.mark.parametrize("cls", BROKEN, ids=lambda c: c.name)
def test_broken_design_breaks_its_property(cls):
    mode, geo, seed, steps, how = WITNESSES[cls.name]
    if how == "prop":
        inv, step, msg, _ = one(cls, mode, geo, seed, steps, props_only=True, props=(cls.breaks,))
        assert inv == cls.breaks, f"{cls.name} seed {seed}: {inv} {msg}"
    else:
        first, _, loss, _ = extend(cls, mode, geo, seed, steps)
        assert first is not None and loss is not None and loss.invariant == cls.breaks
        assert loss.page == first.page
