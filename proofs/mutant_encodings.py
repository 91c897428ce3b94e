"""Per-page encodings of the mutant corpus (``dirtyproof.mutants``): each one the encoding of the
design the mutant subclasses plus a delta that mirrors exactly the mutant's one change.

A delta replaces only the rules (or the update helper) the mutant's overridden method feeds; a
mutant whose change adds an atomic step gets a new rule for it, and, when the base projection does
not know the step's label or where q's bit then lives, a projection hook (``position_hooks``,
:meth:`project`). The conformance test runs each mutant's worlds against its encoding, as for the
shipped designs. Mutants the abstraction cannot express are listed in ``NOT_EXPRESSIBLE`` with the
reason (docs/proofs.md).
"""
from __future__ import annotations

from dirtyproof.mutants import MUTANTS
from .inductive import BY_ID, marked

from .designs import BackgroundV1Encoding, BaseEncoding, Qemu101Encoding
from .dual import AND, ITE, NOT, OR
from .encoding import Rule
from dirtyproof.impl.steps import L2_READ_WORD, L2_ZERO_WORD

from .project import project
from .state import (M_CDONE, M_SEND, M_VMSTOPPED, MK_LAST, P_COMPLETED, S_CBT, S_ENTER, S_PICK, S_READ, S_TAKEN, Y_BLK2, Y_CT, Y_FOLD,
                    Y_LS_MID, Y_QDONE)


def _replace(rules: list, name: str, new: Rule) -> list:
    """``rules`` with the rule called ``name`` replaced by ``new`` (same place in the table)."""
    out = [new if r.name == name else r for r in rules]
    assert any(r.name == name for r in rules), name
    return out


def _sending(s, pos):
    return AND(s["mpc"] == M_SEND, s["ss"] == pos)


# -- the sender ------------------------------------------------------------------------------------
class ReadBeforeClearEncoding(BaseEncoding):
    """read-before-clear: bmap take, read, *then* the owed chunk clear, then deliver."""

    design = "read-before-clear"

    def send_rules(self) -> list[Rule]:
        """The take goes straight from the pick; the chunk take/CLEAR move between read and deliver."""
        R = [r for r in super().send_rules() if r.name in ("send_leave", "send_drained", "send_pick", "send_read")]
        R.append(Rule("migration", "send_take_bmap", True, (), lambda s, f: (
            _sending(s, S_PICK), dict(su=s["pq"], bmap=AND(s["bmap"], NOT(s["pq"])), ss=S_TAKEN))))
        R.append(Rule("migration", "send_take_chunk", True, (), lambda s, f: (
            AND(_sending(s, S_READ), s["pc"], s["cb"]), dict(cb=False, cpend=s["manual"], ss=S_CBT))))
        R.append(Rule("migration", "send_no_chunk", False, (), lambda s, f: (
            AND(_sending(s, S_READ), NOT(AND(s["pc"], s["cb"]))), dict(ss=S_CBT, cpend=False))))
        R.append(Rule("migration", "send_clear_q", True, (), lambda s, f: (
            AND(_sending(s, S_CBT), s["cpend"], s["sy"] != Y_LS_MID), {**self.clear_q(s), "cpend": False})))
        R.append(Rule("migration", "send_deliver", True, (), lambda s, f: (
            AND(_sending(s, S_CBT), NOT(s["cpend"])), dict(deq=ITE(s["pq"], NOT(s["stale"]), s["deq"]), sr=False,
                                                           ss=S_ENTER, pq=False, pc=False))))
        return R

    def send_flags(self, s):
        """The page stays in flight across the chunk clear that now follows the read; the bmap
        bit is taken straight from the pick."""
        from .inductive import send_flags
        return send_flags(s, read_at=(S_READ, S_CBT), bmap_at=(S_PICK,))


class ClearMaskRangeEncoding(BaseEncoding):
    """clear-mask-range: the CLEAR's mask is the whole range, not q's fetched L1c bit."""

    design = "clear-mask-range"

    def clear_q(self, s) -> dict:
        """q is in the range: L1 cleared and q re-protected whatever L1c says (logging on)."""
        on = s["log"]
        return dict(L1=AND(s["L1"], NOT(on)), WP=OR(s["WP"], on), L1c=AND(s["L1c"], NOT(on)))


class ClearNoReprotectEncoding(BaseEncoding):
    """clear-no-reprotect: a CLEAR drops q's L1 bit (mask from L1c) and leaves q writable."""

    design = "clear-no-reprotect"

    def clear_q(self, s) -> dict:
        """As the base, except that a masked q ends unprotected instead of protected."""
        hit = AND(s["log"], s["L1c"])
        return dict(L1=AND(s["L1"], NOT(hit)), WP=AND(s["WP"], NOT(hit)), L1c=AND(s["L1c"], NOT(s["log"])))


# -- the syncs ---------------------------------------------------------------------------------------
def _nonatomic_position(w, q, actor, step, rel):
    """nonatomic-xchg's two fast-path steps: before q's word, between read and zero of q's word
    (``Y_CT``), after it."""
    if step.kind not in (L2_READ_WORD, L2_ZERO_WORD):
        return None
    rb = w.block_of(q)
    k, qk = step.word - rb.offset // rb.word_bits, rel // rb.word_bits
    if k != qk:
        return Y_BLK2 if k < qk else Y_QDONE
    return Y_CT if step.kind == L2_READ_WORD else Y_QDONE


class NonAtomicXchgEncoding(BaseEncoding):
    """nonatomic-xchg: the fast path reads q's L2 word in one step and zeroes it (OR-ing what it
    read into bmap) in the next. Between the two, q's read bit is in the sync's local (``carry``)
    at position ``Y_CT`` (on an aligned block; the slow-path rules keep to unaligned ones)."""

    design = "nonatomic-xchg"
    position_hooks = (_nonatomic_position,)

    def project(self, w, q) -> dict:
        """The base projection; between read and zero of q's word, ``carry`` is q's bit of ``bits``."""
        st = project(w, q, self.position_hooks)
        if st["sy"] == Y_CT and w.block_of(q).fast_path:
            # the read step's record carries the word it read: q's bit of it is in the sync's hands
            actor = w.actors[{0: "migration", 1: "timer", 2: "watcher"}[st["syo"]]]
            rel = q - w.block_of(q).offset
            st["carry"] = bool((actor.step.value >> (rel % w.block_of(q).word_bits)) & 1)
        return st

    def sync_rules(self, owner, actor) -> list[Rule]:
        """``sync_xchg`` becomes ``sync_read_word`` + ``sync_zero_word``."""
        R = []
        for r in super().sync_rules(owner, actor):
            if r.name == "sync_xchg":
                continue
            if r.name in ("sync_slow_clear", "sync_slow_noclear"):
                r = Rule(r.actor, r.name, r.yields, r.facts,
                         lambda s, f, fn=r.fn: (AND(fn(s, f)[0], NOT(s["fast"])), fn(s, f)[1]))
            R.append(r)

        def at(s, pos):
            return AND(self.owner_at_sync(s, owner), s["sy"] == pos)
        R.append(Rule(actor, "sync_read_word", True, ("others",), lambda s, f: (
            AND(at(s, Y_BLK2), s["fast"], OR(s["L2"], f["others"])), dict(carry=s["L2"], sy=Y_CT))))
        R.append(Rule(actor, "sync_zero_word", True, (), lambda s, f: (
            AND(at(s, Y_CT), s["fast"]), {**self.l2_into(s, s["carry"]), "L2": False, "carry": False,
                                          "sy": Y_QDONE})))
        return R


class SkipSlotOrEncoding(BaseEncoding):
    """skip-slot-or: the OR step of the last memslot drops the fetched bits (fact: q's slot is
    the last one)."""

    design = "skip-slot-or"

    def sync_rules(self, owner, actor) -> list[Rule]:
        """``sync_or`` with the fact ``last_slot``: then L2 is left alone."""
        R = super().sync_rules(owner, actor)
        old = next(r for r in R if r.name == "sync_or")
        return _replace(R, "sync_or", Rule(old.actor, old.name, old.yields, ("last_slot",), lambda s, f: (
            old.fn(s, f)[0], {**old.fn(s, f)[1], "L2": OR(s["L2"], AND(NOT(f["last_slot"]), s["L1c"])),
                              # the skipped slot's fetched bits stay un-synced in L1c
                              "uns": ITE(f["last_slot"], s["uns"], old.fn(s, f)[1].get("uns", s["uns"]))})))


class NoFinalSyncEncoding(BaseEncoding):
    """no-final-sync: after the VM stops, the final drain starts without the last-stage sync."""

    design = "no-final-sync"

    def mig_rules(self) -> list[Rule]:
        """``last_sync`` becomes ``final_drain``: take ``bitmap_mutex`` and send what bmap holds."""
        return _replace(super().mig_rules(), "last_sync", Rule("migration", "final_drain", False, (), lambda s, f: (
            AND(s["mpc"] == M_VMSTOPPED, NOT(self.sync_mutex(s))), dict(mpc=M_SEND, mk=MK_LAST, ss=S_ENTER))))


# -- setup ---------------------------------------------------------------------------------------------
class _SetupFactEncoding(BaseEncoding):
    """A setup rule with one fact about q (``setup_fact``) that ``setup_delta`` uses."""

    setup_fact = ""

    def setup_delta(self, s, fact) -> dict:
        """What the mutant's setup does differently at q."""
        raise NotImplementedError

    def mig_rules(self) -> list[Rule]:
        """``setup`` with the fact."""
        R = super().mig_rules()
        old = next(r for r in R if r.name == "setup")
        return _replace(R, "setup", Rule("migration", "setup", True, (self.setup_fact,), lambda s, f: (
            old.fn(s, f)[0], {**old.fn(s, f)[1], **self.setup_delta(s, f[self.setup_fact])})))


class BmapInitLastPageMissingEncoding(_SetupFactEncoding):
    """bmap-init-last-page-missing: setup clears bmap of each block's last page (fact: q is it)."""

    design = "bmap-init-last-page-missing"
    setup_fact = "last_page"

    def setup_delta(self, s, last) -> dict:
        """``bmap.fill(False); set_range(0, pages - 1)``: q's bit is set unless q is last."""
        return dict(bmap=NOT(last))


class BmapReusedOnRestartEncoding(_SetupFactEncoding):
    """bmap-reused-on-restart: a later attempt skips ``ram_list_init_bitmaps`` (fact: the bitmaps
    were allocated by an earlier attempt of this world): bmap and clear_bmap keep their values."""

    design = "bmap-reused-on-restart"
    setup_fact = "reused"

    def setup_delta(self, s, reused) -> dict:
        """Leftover bmap and clear_bmap bits when reused."""
        return dict(bmap=ITE(reused, s["bmap"], True), cb=AND(reused, s["cb"]))


# -- background-v1 -------------------------------------------------------------------------------------
class ForgetIterFoldEncoding(BackgroundV1Encoding):
    """forget-iter-fold: the MODERN_ITER fold step leaves bmap as it was."""

    design = "forget-iter-fold"

    def tail_rules(self, rule, at) -> None:
        """``sync_fold`` moves on without ``bmap |= iter``."""
        collected = []
        super().tail_rules(lambda name, y, fn, facts=(): collected.append((name, y, fn, facts)), at)
        for name, y, fn, facts in collected:
            if name == "fold":
                fn = (lambda old: lambda s, f: (old(s, f)[0], dict(sy=Y_FOLD)))(fn)
            rule(name, y, fn, facts)


# -- qemu-10.1 -----------------------------------------------------------------------------------------
class LastStageSkipsBmapTakeEncoding(Qemu101Encoding):
    """last-stage-skips-bmap-take: in the last stage the send neither takes q's bmap bit nor reads
    it; the step after it ends the drain (``ram_find_and_save_block`` returned 0)."""

    design = "last-stage-skips-bmap-take"

    def send_rules(self) -> list[Rule]:
        """The take and the read only outside the last stage; in it, a take that changes nothing,
        then the end of the drain whatever bmap holds."""
        last = lambda s: s["mk"] == MK_LAST  # noqa: E731
        R = []
        for r in super().send_rules():
            if r.name in ("send_take_bmap", "send_read"):
                r = (lambda old: Rule(old.actor, old.name, old.yields, old.facts, lambda s, f: (
                    AND(old.fn(s, f)[0], NOT(last(s))), old.fn(s, f)[1])))(r)
            R.append(r)
        R.append(Rule("migration", "send_skip_take", True, (), lambda s, f: (
            AND(_sending(s, S_CBT), NOT(s["cpend"]), last(s)), dict(ss=S_TAKEN))))
        R.append(Rule("migration", "send_gave_up", True, (), lambda s, f: (
            AND(_sending(s, S_TAKEN), last(s)), dict(mpc=M_CDONE, ss=S_ENTER, pq=False, pc=False))))
        return R


MUTANT_ENCODINGS: dict[type, type] = {MUTANTS[e.design]: e for e in (
    ReadBeforeClearEncoding, ClearMaskRangeEncoding, ClearNoReprotectEncoding, NonAtomicXchgEncoding,
    SkipSlotOrEncoding, NoFinalSyncEncoding, BmapInitLastPageMissingEncoding, BmapReusedOnRestartEncoding,
    ForgetIterFoldEncoding, LastStageSkipsBmapTakeEncoding)}

# Corpus mutants without an encoding, and why (docs/proofs.md).
NOT_EXPRESSIBLE = {
    "clear-previous-chunk": "the CLEAR targets a chunk other than the one whose clear_bmap bit is "
                            "taken; the abstract state ties the pending CLEAR to q's chunk (pc)",
    "count-outside-mutex": "changes only migration_dirty_pages, which the per-page state omits "
                           "(counting is proved separately, proofs/counting.py)",
    "dirty-count-raw-bits": "changes only migration_dirty_pages (see count-outside-mutex); its counter "
                            "adds the term the counting lemmas refute (proofs/counting_conformance.py)",
    "period-popcount": "changes only num_dirty_pages_period (see count-outside-mutex); its counter adds "
                       "the term the counting lemmas refute (proofs/counting_conformance.py)",
    "timer-mutex-before-bql": "a lock-order deadlock: the encoding has no lock-waiting states",
    "iterate-sync-in-mutex": "a lock-order deadlock: the encoding has no lock-waiting states",
    "last-stage-set-at-exact-sync": "the skip depends on a flag the exact sync sets, which the per-page state "
                                    "does not hold; it breaks only QEMU's rule clear-before-read and no "
                                    "property (a skipped CLEAR leaves the L1 bit set: the next GET reports "
                                    "the page again)",
    "batched-slow-counts-raw": "changes only migration_dirty_pages (see count-outside-mutex), on the slow "
                               "path; its counter adds the term the counting lemmas refute "
                               "(proofs/counting_conformance.py, slow-path world)",
    "bg-sync-takes-legacy-path": "it breaks only QEMU's rule that a background sync leaves bmap alone (a "
                                 "whole-bitmap rule) and no property: per page it is one more ordinary sync",
    "remaining-after-cleanup": "a use of freed RAMState (memory-safety): the per-page state has no notion "
                               "of allocated or freed memory",
    "timer-flag-not-deleted": "a thread outliving its attempt (thread-lifetime): the encoding's threads "
                              "carry no attempt, and a timer left armed changes no page's state",
    "watcher-left-on-cancel": "a thread outliving its attempt (thread-lifetime, see timer-flag-not-deleted); "
                              "the watcher's later syncs on freed state are memory-safety, also not per page",
}


def violated_property(s: dict, enc) -> str:
    """The spec property a bad state of a counterexample breaks (the disjuncts of
    ``proofs.bmc.bad``, which holds properties only): ``no-loss`` (completed with dest != src),
    ``coverage`` or ``thread-error``. QEMU's rules are never a bad state: see
    :func:`rules_broken`."""
    if s["err"]:
        return "thread-error"
    if s["phase"] == P_COMPLETED and not s["deq"]:
        return "no-loss"
    if s["ready"] and s["stale"] and not marked(s, enc):
        return "coverage"
    return "none"


def rules_broken(states, enc) -> list[tuple[int, str]]:
    """``(index, rule)`` of the first state on a counterexample path where each per-page rule of
    the strengthening (wp-unlogged, clear-before-read) fails: what the path breaks on its way to
    the property, reported as rules."""
    out = []
    for rule in ("wp-unlogged", "clear-before-read"):
        i = next((i for i, st in enumerate(states) if not BY_ID[rule].pred(st, enc)), None)
        if i is not None:
            out.append((i, rule))
    return sorted(out)

