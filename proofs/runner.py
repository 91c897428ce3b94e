"""Prove one design in one configuration: the three obligations, and when they do not all hold,
bounded model checking, Z3 confirmation of the path, and a replayed concrete counterexample."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .bmc import BmcResult, confirm, search
from .concretize import Concrete, concretize
from .registry import encoding_for
from .obligations import GEOMETRIES, KVM_MODES, Obligation, prove
from .solver import QueryRunner

CONFIGS = tuple(f"{m}/{g}" for m in KVM_MODES for g in GEOMETRIES)


class EncodingBug(Exception):
    """Z3 and the search say unsafe but the reference model does not confirm it."""


class EncodingMismatch(Exception):
    """A user-supplied encoding admits no successor for a real step of its design: it is not the
    design's encoding, and a proof with it would prove something else. ``step`` says which."""

    def __init__(self, message: str, step: str):
        super().__init__(message)
        self.step = step


# The conformance gate of a user-supplied encoding: seeded random runs per configuration.
GATE_SEEDS = 3
GATE_STEPS = 250


def user_encoding(design_cls) -> bool:
    """Whether ``design_cls`` brings its own encoding (``per_page_encoding``): one the shipped
    tests do not check, so :func:`prove_config` checks it first (:func:`conformance_gate`)."""
    return getattr(design_cls, "per_page_encoding", None) is not None


def config_of(mode: str, geo: str):
    """The reference model's world of a proof configuration (the geometry the prover abstracts)."""
    from dirtyproof.impl import Config
    from dirtyproof.impl.geometry import named
    return Config(geometry=named(geo, 2), kvm_mode=mode)


def describe_mismatch(m) -> str:
    """One conformance mismatch (``ConformanceReport.mismatches`` entry) as one line."""
    seed, step, choice, page, before, after, label = m
    changed = ", ".join(f"{k} {before.get(k)!r}->{after.get(k)!r}" for k in sorted(after)
                        if before.get(k) != after.get(k)) or "no abstract change"
    return (f"seed {seed} step {step} {list(choice)} {label!r}, page {page}: the encoding admits no "
            f"successor reaching the real one ({changed})")


def conformance_gate(design_spec: str, design_cls, config: str, enc, seeds: int = GATE_SEEDS,
                     steps: int = GATE_STEPS) -> None:
    """Check ``enc`` against ``design_cls``'s own seeded runs in ``config`` (proofs/conformance.py
    :func:`check_run`); :class:`EncodingMismatch` printing the first mismatching step otherwise."""
    from .conformance import check_run
    mode, geo = parse_config(config)
    rep = None
    for seed in range(seeds):
        rep = check_run(design_cls, config_of(mode, geo), enc, seed, steps, report=rep, max_mismatches=1)
        if not rep.ok:
            break
    if not rep.ok:
        step = describe_mismatch(rep.mismatches[0])
        raise EncodingMismatch(f"{design_spec} {config}: its per_page_encoding {type(enc).__name__} does not "
                               f"conform to the design: {step}", step)
    if rep.checked == 0:
        raise EncodingMismatch(f"{design_spec} {config}: the conformance check checked no step", "none")


@dataclass
class ConfigResult:
    """Everything ``prove`` reports for one design and configuration."""

    design: str
    config: str
    verdict: str                      # safe, unsafe, unknown
    obligations: list = field(default_factory=list)
    bmc: BmcResult | None = None
    concrete: Concrete | None = None
    seconds: float = 0.0


def parse_config(text: str) -> tuple[str, str]:
    """``KVM_MODE/GEOMETRY`` -> (mode, geometry); ``ValueError`` naming the choices otherwise."""
    mode, _, geo = text.partition("/")
    if mode not in KVM_MODES or geo not in GEOMETRIES:
        raise ValueError(f"bad configuration {text!r}: use KVM_MODE/GEOMETRY with KVM_MODE in "
                         f"{', '.join(KVM_MODES)} and GEOMETRY in {', '.join(GEOMETRIES)}")
    return mode, geo


def prove_config(design_spec: str, design_cls, config: str, runner: QueryRunner,
                 trace_dir: Path | None = None, bmc_depth: int = 200, replay: bool = True) -> ConfigResult:
    """The verdict of ``design_cls`` in ``config`` with its evidence. A design with its own
    ``per_page_encoding`` passes :func:`conformance_gate` first (:class:`EncodingMismatch`
    otherwise); one without an encoding raises ``NoEncoding``. ``replay=False`` stops an
    unsafe verdict at the Z3-confirmed abstract counterexample (no concrete schedule): for the
    corpus mutants, whose concrete counterexamples are the hunter's."""
    t0 = time.perf_counter()
    mode, geo = parse_config(config)
    enc = encoding_for(design_cls)
    if user_encoding(design_cls):
        conformance_gate(design_spec, design_cls, config, enc)    # trusted only once it conforms
    obs: list[Obligation] = prove(enc, mode, geo, runner)
    res = ConfigResult(design_spec, config, "safe", obs)
    if all(o.verdict == "proved" for o in obs):
        res.seconds = time.perf_counter() - t0
        return res
    fast_values = None
    if geo == "mixed":
        aligned = prove(enc, mode, "aligned", runner)
        if all(o.verdict == "proved" for o in aligned):
            fast_values = (False,)      # aligned q is proved safe: only unaligned starts can fail
    b = search(enc, mode, geo, bmc_depth, fast_values)
    res.bmc = b
    if b.status != "found":
        res.verdict = "unknown"
        res.seconds = time.perf_counter() - t0
        return res
    if not confirm(b, enc, mode, runner, f"{design_spec}/{config}/bmc-path"):
        raise EncodingBug(f"{design_spec} {config}: Z3 rejects the path the search found")
    if not replay:
        res.verdict = "unsafe"
        res.seconds = time.perf_counter() - t0
        return res
    from .concretize import ConcretizationError
    out = None
    if trace_dir is not None:
        safe = design_spec.replace(":", "_").replace("/", "_")
        out = Path(trace_dir) / f"{safe}-{mode}-{geo}.json"
    try:
        res.concrete = concretize(design_spec, design_cls, mode, b.states, out, path=b.path, enc=enc)
    except ConcretizationError as exc:
        raise EncodingBug(f"{design_spec} {config}: {exc}") from None
    res.verdict = "unsafe"
    res.seconds = time.perf_counter() - t0
    return res


def expected_verdicts() -> dict:
    """The prover's recorded expectations for the shipped designs: design -> config -> safe/unsafe
    (the manifest, mutants/manifest.json, is their one home)."""
    from dirtyproof.mutants import load_manifest
    return {name: e["prover"] for name, e in load_manifest()["designs"].items()}
