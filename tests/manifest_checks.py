"""Shared by the opt-in hunts of the manifest's flagged sections (hinting, multifd)."""


def assert_hunt_matches(rep, e: dict) -> None:
    """A hunt report ``rep`` gives the manifest entry ``e``'s verdict: for an unsafe entry by the
    recorded search and property within the recorded length, for a safe one with exactly the
    recorded rule (or none) broken on the way."""
    assert rep.verdict == e["verdict"], str(rep.found)
    if e["verdict"] == "unsafe":
        assert rep.found_by == e["found_by"] and rep.found.invariant == e["property"], str(rep.found)
        assert rep.found.length <= e["max_steps"], rep.found.length
    else:
        assert list(rep.rules_broken) == ([e["rule"]] if e["rule"] else [])
