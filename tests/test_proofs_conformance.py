"""The per-page encoding agrees with the reference model (the executable truth) step by step."""
import pytest

from dirtyproof.cli.main import geometry_named
from dirtyproof.impl import Config
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.proofs.conformance import check_run
from dirtyproof.proofs.designs import BackgroundV1Encoding, BaseEncoding
from dirtyproof.proofs.registry import encoding_for


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("mode", ["legacy", "manual", "initially_set"])
def test_encoding_admits_every_real_step(design, mode):
    rep = None
    for geo in ("mixed", "aligned"):
        cfg = Config(geometry=geometry_named(geo, 2), kvm_mode=mode)
        rep = check_run(DESIGNS[design], cfg, encoding_for(DESIGNS[design]), 0, 250, report=rep)
    assert rep.checked > 2000
    assert rep.ok, rep.mismatches[:2]


def test_conformance_catches_a_wrong_encoding():
    class WrongXchg(BaseEncoding):
        def xchg_updates(self, s):
            return {}
    rep = check_run(DESIGNS["legacy"], Config(), WrongXchg(), 0, 300)
    assert not rep.ok


def test_conformance_catches_a_wrong_design_delta():
    class NoShadow(BackgroundV1Encoding):
        def slow_pre(self, s):
            return {}
    rep = None
    rep = check_run(DESIGNS["background-v1"], Config(kvm_mode="legacy"), NoShadow(), 0, 2000, pages=6)
    assert not rep.ok
