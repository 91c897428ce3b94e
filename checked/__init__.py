"""dirtyproof.checked: the model composed with the spec (checked runs, replays, design names).

``impl/`` is the model and ``spec/`` the checks; neither imports the other, nor the mutant
corpus. Everything that runs a design *and* judges it (the CLI, the hunt, the explorer's
replays, the prover's concrete counterexamples, the tests) goes through here.
"""
from .designs import resolve
from .replay import replay
from .run import RunResult, StepRecord, extend_to_completion, run

__all__ = ["RunResult", "StepRecord", "extend_to_completion", "replay", "resolve", "run"]
