"""Hypothesis settings profiles of the hunter: ``ci`` (fast, deterministic), ``dev`` and ``thorough``.

The profile is chosen by a command-line flag, else by the ``DIRTYPROOF_PROFILE`` environment
variable, else ``ci``. The profiles are also registered with Hypothesis as ``dirtyproof-<name>``
so a user can load them with ``settings.load_profile``.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

ENV_VAR = "DIRTYPROOF_PROFILE"
DEFAULT_PROFILE = "ci"

_COMMON = dict(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
    print_blob=False,
)

PROFILES: dict[str, settings] = {
    # CI: same examples every run, no database, a fixed budget.
    "ci": settings(max_examples=120, stateful_step_count=40, derandomize=True, database=None,
                   phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink), **_COMMON),
    # A developer's machine: random seeds, failures remembered in .hypothesis/.
    "dev": settings(max_examples=400, stateful_step_count=50, **_COMMON),
    # Long hunts (not in the default test run).
    "thorough": settings(max_examples=5000, stateful_step_count=80, **_COMMON),
}

# Swarm schedules a hunt runs before the Hypothesis machine (``runner.schedule_sweep``); each is
# a few hundred atomic steps on a small world, about 0.03 s with every invariant checked.
PROFILE_SCHEDULES: dict[str, int] = {"ci": 200, "dev": 500, "thorough": 5000}


def _generate_without_local_constants() -> None:
    """Make a hunt's examples depend on its seed and settings alone.

    Hypothesis mixes into generation the literals of every *local* module loaded so far
    (``hypothesis.internal.conjecture.providers._get_local_constants``), so the same derandomized
    hunt explored different examples under pytest (which imports every test file) than from the
    command line. The hunter generates pages, clock steps and thread choices from its own
    strategies and gains nothing from those literals; without them a ``ci`` hunt is reproducible."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a Hypothesis without the feature
        return
    if hasattr(providers, "_get_local_constants") and hasattr(providers, "Constants"):
        empty = providers.Constants()
        providers._get_local_constants = lambda: empty


_generate_without_local_constants()

for _name, _s in PROFILES.items():
    settings.register_profile(f"dirtyproof-{_name}", _s)


class ProfileError(ValueError):
    """An unknown profile name."""


def profile_name(name: str | None = None) -> str:
    """The profile to use: ``name`` if given, else ``$DIRTYPROOF_PROFILE``, else ``ci``."""
    chosen = name or os.environ.get(ENV_VAR) or DEFAULT_PROFILE
    if chosen not in PROFILES:
        raise ProfileError(f"unknown hunt profile {chosen!r} (choose from {', '.join(PROFILES)})")
    return chosen


def schedules_for(name: str | None = None) -> int:
    """How many swarm schedules a hunt with profile ``name`` runs before the machine."""
    return PROFILE_SCHEDULES[profile_name(name)]


def get_settings(name: str | None = None, **overrides) -> settings:
    """The Hypothesis settings of a profile, with ``overrides`` (``max_examples=...``) applied."""
    base = PROFILES[profile_name(name)]
    return settings(base, **overrides) if overrides else base
