"""Opt-in check that the third set's ground truth still holds (outside the suite's ``testpaths``:
run it as ``PYTHONPATH=. .venv/bin/python -m pytest -q -m slow heldout3/test_verify.py``, ~20 s)."""
import pytest


@pytest.mark.slow
def test_every_ground_truth_replays():
    """Each broken design's seed or trace breaks its property; each safe design keeps them all."""
    from heldout3.verify import main
    assert main(["--ok-seeds", "2"]) == 0
