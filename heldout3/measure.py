"""Every engine on every design of the third set, with heldout2's engines, budgets and table.

    PYTHONPATH=. .venv/bin/python -m heldout3.measure [--json OUT.jsonl] [--engines hunt,check] [NAME ...]

The flags are heldout2.measure's (``--seeds``, ``--schedules``, ``--examples``, ``--states``,
``--check-hunt``, ``--cap``, ``--engines``, ``--json``); the defaults are the budgets heldout2's
BEFORE figures used. HELD OUT: do not tune a search on these numbers.
"""
from __future__ import annotations

import sys

from heldout2.measure import main as measure_main

from . import HELD_OUT


def main(argv=None) -> int:
    """Measure this set's designs (or those named)."""
    return measure_main(argv, held_out=HELD_OUT, label="heldout3")


if __name__ == "__main__":
    sys.exit(main())
