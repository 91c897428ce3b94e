"""Test-suite defaults: ``check`` and ``prove`` explore only the first entry of the explorer's
default bound (``$DIRTYPROOF_EXPLORE_BOUND=threads``) unless the environment says otherwise; the
suite checks many designs through them, and the default bound costs tens of seconds to minutes
per design. tests/test_explore_gate.py runs the default bound itself where it is the subject."""
import os

os.environ.setdefault("DIRTYPROOF_EXPLORE_BOUND", "threads")
