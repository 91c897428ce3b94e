"""dirtyproof.hunt: Hypothesis stateful hunts for lost dirty pages, generic over designs.

In a user's own pytest file::

    from dirtyproof.hunt import hunt_test
    test_mine = hunt_test(MyDesign)          # or: TestMine = machine_for(MyDesign).TestCase

The settings profile is ``ci`` (deterministic), ``dev`` or ``thorough``, chosen by the
``DIRTYPROOF_PROFILE`` environment variable or the ``profile=`` argument.
"""
from .machine import DesignMachine, machine_for
from .profiles import PROFILES, ProfileError, get_settings, profile_name
from .report import HuntViolation
from .runner import HuntReport, hunt, hunt_test

__all__ = ["DesignMachine", "HuntReport", "HuntViolation", "PROFILES", "ProfileError", "get_settings",
           "hunt", "hunt_test", "machine_for", "profile_name"]
