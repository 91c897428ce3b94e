"""Small broken variants of the encoding, each violating one obligation: they show the
obligations are not vacuous (until the mutant corpus covers them)."""
from __future__ import annotations

from .designs import BaseEncoding
from .dual import AND, NOT
from .encoding import Rule
from .state import M_SEND, S_CBT, S_PICK


class DroppedLayer(BaseEncoding):
    """The log sync forgets to OR the fetched slot copy into L2 (a dropped layer)."""

    design = "broken-dropped-layer"

    def sync_rules(self, owner, actor):
        """``sync_or`` clears the unsynced flag without copying L1c into L2."""
        out = []
        for r in super().sync_rules(owner, actor):
            if r.name == "sync_or":
                r = Rule(r.actor, r.name, r.yields, r.facts,
                         lambda s, f, fn=r.fn: (fn(s, f)[0], {**fn(s, f)[1], "L2": s["L2"]}))
            out.append(r)
        return out


class SplitFetchClear(BaseEncoding):
    """Slow path: test-and-clear of L2 that forgets the value it fetched (non-atomic fetch and
    clear: the bit cleared is not the bit carried)."""

    design = "broken-split-fetch-clear"

    def sync_rules(self, owner, actor):
        """``sync_slow_test`` clears L2 but carries nothing."""
        out = []
        for r in super().sync_rules(owner, actor):
            if r.name == "sync_slow_test":
                r = Rule(r.actor, r.name, r.yields, r.facts,
                         lambda s, f, fn=r.fn: (fn(s, f)[0], {**fn(s, f)[1], "carry": False}))
            out.append(r)
        return out


class ReadBeforeClear(BaseEncoding):
    """The sender reads a page without doing the owed remote clear of its chunk first."""

    design = "broken-read-before-clear"

    def send_rules(self):
        """``send_no_chunk`` is taken even when q's chunk clear is owed."""
        out = [r for r in super().send_rules() if r.name not in ("send_take_chunk", "send_no_chunk")]
        out.append(Rule("migration", "send_no_chunk", False, (), lambda s, f: (
            AND(s["mpc"] == M_SEND, s["ss"] == S_PICK), dict(ss=S_CBT, cpend=False))))
        return out


class SetupNoBmap(BaseEncoding):
    """Setup does not set every bmap bit (a restarted migration relies on leftovers)."""

    design = "broken-setup-no-bmap"

    def setup_updates(self, s):
        """bmap keeps its leftover value."""
        upd = super().setup_updates(s)
        upd["bmap"] = s["bmap"]
        return upd


BROKEN = {c.design: c for c in (DroppedLayer, SplitFetchClear, ReadBeforeClear, SetupNoBmap)}
# which obligation each one must violate
EXPECTED = {"broken-dropped-layer": "consecution", "broken-split-fetch-clear": "consecution",
            "broken-read-before-clear": "consecution", "broken-setup-no-bmap": "initiation"}
