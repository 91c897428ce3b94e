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
    """The verdict of ``design_cls`` in ``config`` with its evidence. ``replay=False`` stops an
    unsafe verdict at the Z3-confirmed abstract counterexample (no concrete schedule): for the
    corpus mutants, whose concrete counterexamples are the hunter's."""
    t0 = time.perf_counter()
    mode, geo = parse_config(config)
    enc = encoding_for(design_cls)
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
