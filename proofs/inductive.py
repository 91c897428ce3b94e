"""The per-page inductive invariant the prover uses: each conjunct with an id and why it is needed.

Conjuncts are predicates over the per-page abstract state of ``dirtyproof.proofs.state`` (one
arbitrary page q, its layer bits, the truth, and the threads' positions relative to q), written
with the dual operators so the same text is evaluated concretely and by Z3. ``design`` is the
design's per-page encoding (it says which threads and bitmaps exist).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .dual import AND, IMP, IN, ITE, NOT, OR
from .state import (F_MBG, F_MITER, T_NONE, M_CDONE, M_CSTART, M_EXIT, M_FINISH, M_INIT, M_NONE,
                                     M_POSTSYNC, M_SEND, M_SYNC, M_TOP, M_VMSTOPPED, MK_LAST, MK_SETUP,
                                     O_MIG, O_TIMER, O_WATCHER, P_ACTIVE, P_CANCELLED, P_COMPLETED,
                                     P_COMPLETING, P_NONE, P_SETUP, S_CBT, S_PICK, S_READ, S_TAKEN,
                                     T_POST, T_SYNC, W_FLIPPED, W_POST, W_SYNC, Y_BLK, Y_BLK2, Y_CBD, Y_CC, Y_CT,
                                     Y_FOLD, Y_LS_MID, Y_NONE, Y_POSTBLK, Y_QDONE)


@dataclass(frozen=True)
class Conjunct:
    """One conjunct: ``id``, the sentence saying why it is needed, and the predicate."""

    id: str
    why: str
    pred: Callable          # (state, encoding) -> bool or Z3 term
    spec: str = ""          # the spec invariant it restates, if any


def marked_without_iter(s):
    """q is marked in a layer that leads to a send, not counting background-v1's iter_bmap."""
    return OR(s["L2"], AND(s["log"], s["L1"]), AND(s["uns"], s["L1c"]), s["bmap"], s["carry"], s["su"])


def marked_nonkvm(s):
    """q is marked outside KVM's L1 (which a CLEAR or the log stop erases)."""
    return OR(AND(s["uns"], s["L1c"]), s["L2"], s["bmap"], s["carry"], s["su"])


def miter_past_prologue(s):
    """A MODERN_ITER sync is in q's block past its prologue (it will fold iter into bmap)."""
    return AND(s["syf"] == F_MITER, IN(s["sy"], (Y_BLK2, Y_CT, Y_CC, Y_QDONE, Y_CBD, Y_FOLD)))


def drop_candidate(s):
    """background-v1: the next MODERN prologue drops q's iter bit (flag, shadow set, bmap clear)."""
    return AND(s["bss"], s["shadow"], NOT(s["bmap"]), NOT(miter_past_prologue(s)))


def iter_kept(s, enc):
    """background-v1: q's iter_bmap bit is set and the next MODERN prologue will not drop it."""
    return AND(enc.has_watcher, s["iter"], NOT(drop_candidate(s)))


def marked(s, enc):
    """q is marked in a layer that leads to a send (the spec's coverage layers)."""
    return OR(marked_without_iter(s), AND(enc.has_watcher, s["iter"]))


def sending(s, *positions):
    """The migration thread is inside a page send at one of ``positions``."""
    return AND(s["mpc"] == M_SEND, IN(s["ss"], positions))


def last_stage(s):
    """The migration thread is in the last-stage sync, the final drain, or past them."""
    return OR(AND(IN(s["mpc"], (M_SYNC, M_POSTSYNC, M_SEND)), s["mk"] == MK_LAST),
              IN(s["mpc"], (M_VMSTOPPED, M_CDONE, M_FINISH)))


def last_get_done(s):
    """The last-stage sync has fetched q's memslot (or is past it)."""
    in_sync = AND(s["mpc"] == M_SYNC, s["mk"] == MK_LAST, s["syo"] == O_MIG,
                  IN(s["sy"], (Y_LS_MID, 4, 5, Y_BLK, Y_BLK2, Y_CT, Y_CC, Y_QDONE, Y_CBD, Y_FOLD, Y_POSTBLK)))
    return OR(in_sync, AND(IN(s["mpc"], (M_POSTSYNC, M_SEND)), s["mk"] == MK_LAST), s["mpc"] == M_CDONE)


def last_l2_taken(s):
    """The last-stage sync has taken q's L2 bit (or is past it)."""
    in_sync = AND(s["mpc"] == M_SYNC, s["mk"] == MK_LAST, s["syo"] == O_MIG, IN(s["sy"], (Y_CT, Y_CC)))
    return OR(in_sync, last_l3_done(s))


def last_tail_done(s):
    """The last-stage sync has finished q's block (MODERN_ITER tail included) or is past it."""
    in_sync = AND(s["mpc"] == M_SYNC, s["mk"] == MK_LAST, s["syo"] == O_MIG, s["sy"] == Y_POSTBLK)
    return OR(in_sync, AND(IN(s["mpc"], (M_POSTSYNC, M_SEND)), s["mk"] == MK_LAST), s["mpc"] == M_CDONE)


def last_l3_done(s):
    """The last-stage sync has moved q's L2 bit into L3 (or is past it)."""
    in_sync = AND(s["mpc"] == M_SYNC, s["mk"] == MK_LAST, s["syo"] == O_MIG,
                  IN(s["sy"], (Y_QDONE, Y_CBD, Y_FOLD, Y_POSTBLK)))
    return OR(in_sync, AND(IN(s["mpc"], (M_POSTSYNC, M_SEND)), s["mk"] == MK_LAST), s["mpc"] == M_CDONE)


def send_flags(s, read_at=(S_READ,), bmap_at=(S_PICK, S_CBT)):
    """Where the send's flags may be set, for a send whose page is in flight (read, not yet
    delivered) at ``read_at`` and still in bmap at ``bmap_at``: the base order's by default."""
    return AND(IMP(s["su"], AND(sending(s, S_TAKEN), s["pq"])),
               IMP(s["sr"], AND(sending(s, *read_at), s["pq"])),
               IMP(s["pq"], s["pc"]),
               IMP(AND(sending(s, *bmap_at), s["pq"]), s["bmap"]),
               IMP(s["cpend"], AND(sending(s, S_CBT), s["pc"], s["manual"])))


def _owner_pc(s):
    return OR(AND(s["mpc"] == M_SYNC, s["syo"] == O_MIG), AND(s["tpc"] == T_SYNC, s["syo"] == O_TIMER),
              AND(s["wpc"] == W_SYNC, s["syo"] == O_WATCHER))


def _bql_holders_exclusive(s, enc):
    m, t, w = enc.mig_bql(s), IN(s["tpc"], (T_SYNC, T_POST)), IN(s["wpc"], (W_SYNC, W_POST))
    return AND(NOT(AND(m, t)), NOT(AND(m, w)), NOT(AND(t, w)))


def after_last_get(s):
    """The last-stage GET has fetched q's memslot, or the attempt is past it: the VM is stopped,
    so L1 holds nothing the GET did not already copy into L1c and L2, and no write sets it
    again. Issue 11: the threads stop with dirty logging still on (its stop is savevm cleanup's,
    or postponed while the VM stays stopped), so that holds past the migration thread's exit
    too, for an attempt that went through the last stage (COMPLETED, or COMPLETING with a
    cancel pending). The exemption of ``l1c-owed`` from here on; every design's invariant."""
    past_last = AND(IN(s["mpc"], (M_EXIT, M_NONE)), IN(s["phase"], (P_COMPLETING, P_COMPLETED)))
    return OR(last_get_done(s), s["mpc"] == M_FINISH, past_last)


def in_the_last_stage(s):
    """The migration thread's sync or sends are the last stage's (the VM stopped): no guest
    write can follow a read there. The exemption of ``clear-before-read``; every design's."""
    return s["mk"] == MK_LAST


def _l1c_owed(s, e):
    owed = OR(s["cb"], s["sy"] == Y_QDONE, AND(sending(s, S_CBT), s["cpend"]))
    # Stated for every design (issue 11's item 4): a fetched L1c bit is a future CLEAR's mask,
    # so q's mark must also be elsewhere, until the last-stage GET (after_last_get: with the VM
    # stopped L1 adds nothing to what L1c/L2 hold). QEMU 10.1+ needs it (its sender takes no
    # chunk clear in the last stage, so L1c stays set with bmap taken); the other designs
    # prove with it as well.
    return IMP(AND(s["manual"], s["log"], s["L1c"], NOT(after_last_get(s))), OR(
        s["uns"], s["L2"], AND(NOT(s["fast"]), s["sy"] == Y_CT, s["carry"]),
        AND(s["fast"], OR(s["bmap"], iter_kept(s, e)), owed),
        # QEMU 11.0+: between q's L2 -> bmap step and the block's one CLEAR
        AND(e.batched_slow_clear, NOT(s["fast"]), s["sy"] == Y_QDONE, s["bmap"])))


def _clear_taken_before_read(s, e):
    """With manual protect, the sender reads q only after the owed clear of q's chunk was taken,
    except in the last stage (the VM is stopped, no write follows; QEMU 10.1+ skips the clear
    there). Stated for every design: the others take the clear in the last stage too, and
    prove with the exemption as well."""
    return IMP(AND(s["manual"], sending(s, S_CBT, S_TAKEN, S_READ), s["pc"], NOT(in_the_last_stage(s))),
               NOT(s["cb"]))


def _phase_of_pc(s):
    mpc, mk, ph = s["mpc"], s["mk"], s["phase"]
    setup = OR(mpc == M_INIT, AND(IN(mpc, (M_SYNC, M_POSTSYNC)), mk == MK_SETUP))
    last = last_stage(s)
    active = AND(NOT(setup), NOT(last), IN(mpc, (M_TOP, M_CSTART, M_SYNC, M_POSTSYNC, M_SEND)))
    return AND(
        IMP(mpc == M_INIT, AND(ph == P_SETUP, NOT(s["ready"]), NOT(s["log"]))),
        IMP(AND(setup, mpc != M_INIT), AND(ph == P_SETUP, s["ready"], s["log"])),
        IMP(active, AND(ph == P_ACTIVE, s["ready"], s["log"])),
        IMP(AND(last, mpc != M_FINISH), AND(ph == P_COMPLETING, s["ready"], s["log"], NOT(s["vm"]))),
        # a cancel requested before the completion's end wins: the state is not COMPLETED
        IMP(mpc == M_FINISH, AND(IN(ph, (P_COMPLETING, P_COMPLETED)), IMP(s["creq"], ph == P_COMPLETING),
                                 s["ready"], s["log"],
                                 NOT(s["vm"]))),
        # after the threads stopped: a completed migration keeps dirty logging on (its stop is
        # postponed, the VM stays stopped); a cancelled one is ACTIVE until its cleanup stopped
        # logging and set CANCELLED
        IMP(IN(mpc, (M_EXIT, M_NONE)), AND(IN(ph, (P_NONE, P_ACTIVE, P_COMPLETING, P_COMPLETED, P_CANCELLED)),
                                           IMP(ph == P_COMPLETING, AND(mpc == M_EXIT, s["creq"], s["vm"],
                                                                       s["ready"] == s["log"])),
                                           IMP(ph == P_COMPLETED, AND(s["ready"], NOT(s["vm"]))),
                                           IMP(ph == P_ACTIVE, AND(mpc == M_EXIT, s["creq"],
                                                                   s["ready"] == s["log"])),
                                           IMP(IN(ph, (P_NONE, P_CANCELLED)), AND(NOT(s["log"]), NOT(s["ready"]))))),
        IMP(ph == P_COMPLETING, OR(last, AND(mpc == M_EXIT, s["creq"]))))


CONJUNCTS: tuple[Conjunct, ...] = (
    Conjunct("coverage", "The property itself: a stale page of a set-up migration is marked in a "
             "layer that leads to its being sent again; without it a page can be lost.",
             lambda s, e: IMP(AND(s["ready"], s["stale"]), marked(s, e)), spec="coverage"),
    Conjunct("wp-unlogged", "A page with a clear L1 bit must be write-protected while logging, "
             "or a write to it sets no layer at all.",
             lambda s, e: IMP(AND(s["log"], NOT(s["L1"])), s["WP"]), spec="wp-unlogged"),
    Conjunct("read-fresh", "A page not stale was read at its current version: it is delivered or "
             "in flight. Without it the final state could hold an old version.",
             lambda s, e: IMP(NOT(s["stale"]), OR(s["deq"], s["sr"]))),
    Conjunct("clear-before-read", "With manual protect, once the sender handled q's chunk, the "
             "chunk's remote clear is not owed: reading q while it is owed lets a later CLEAR erase "
             "a write after the read. (In legacy mode there is no CLEAR, so the rule cannot matter; "
             "in the last stage, for any design, the VM is stopped and no write follows: QEMU "
             "10.1+ skips that clear there.)",
             lambda s, e: _clear_taken_before_read(s, e), spec="clear-before-read"),
    Conjunct("l1c-owed", "With manual protect, a fetched L1c bit (the mask of a future CLEAR) is "
             "also in L2, in the sync's carry, or in bmap with the chunk's clear owed or under way "
             "(QEMU 11.0's slow path: with the block's one CLEAR still to come): so the CLEAR that "
             "erases L1 never erases the page's only mark. Not needed after the last-stage GET, "
             "for any design: the VM is stopped, so L1 holds nothing the GET did not copy into "
             "L1c and L2 (QEMU 10.1+ relies on it: no CLEAR of its sender follows there).",
             lambda s, e: _l1c_owed(s, e)),
    Conjunct("uns-in-sync", "q's slot is fetched-but-not-OR-ed only between the GET and the OR of "
             "a sync (slots_lock held): otherwise L1c bits would be counted but never reach L2.",
             lambda s, e: IMP(s["uns"], s["sy"] == Y_LS_MID)),
    Conjunct("carry-in-sync", "q is in a slow-path sync's local only while that sync is at q.",
             lambda s, e: IMP(s["carry"], IN(s["sy"], (Y_CT, Y_CC)))),
    Conjunct("slow-path-states", "The slow-path positions exist only for an unaligned block.",
             lambda s, e: IMP(IN(s["sy"], (Y_CT, Y_CC)), NOT(s["fast"]))),
    Conjunct("send-flags", "The in-flight send flags belong to the sender's position at q; "
             "without it a read or delivery could be attributed to the wrong page.",
             lambda s, e: e.send_flags(s)),
    Conjunct("log-off-clean", "With dirty logging off, KVM holds no dirty bit for q (log_stop "
             "clears them); a later log start must not inherit stale bits.",
             lambda s, e: IMP(NOT(s["log"]), AND(NOT(s["L1"]), NOT(s["L1c"]), NOT(s["uns"])))),
    Conjunct("threads", "Thread positions agree with the locks they hold: one sync at a time (BQL), "
             "sync and sender exclusive (bitmap_mutex), and the sync belongs to its owner.",
             lambda s, e: AND(IMP(s["sy"] != Y_NONE, _owner_pc(s)), IMP(s["mpc"] == M_SYNC, s["sy"] != Y_NONE),
                              IMP(s["tpc"] == T_SYNC, s["sy"] != Y_NONE), IMP(s["wpc"] == W_SYNC, s["sy"] != Y_NONE),
                              _bql_holders_exclusive(s, e),
                              NOT(AND(s["mpc"] == M_SEND, e.sync_mutex(s))), NOT(s["err"]))),
    Conjunct("timer-deleted", "The dirty-sync timer is not armed before setup arms it nor after "
             "migration_iteration_finish deleted it: no timer sync runs while the migration thread "
             "is outside an attempt (issue 11: the threads stop before the cleanup stops logging).",
             lambda s, e: IMP(AND(e.has_timer, IN(s["mpc"], (M_INIT, M_EXIT, M_NONE))), s["tpc"] == T_NONE)),
    Conjunct("phases", "The migration phase, logging, readiness and the VM's run state match the "
             "migration thread's position: completion relies on the VM being stopped.",
             lambda s, e: _phase_of_pc(s)),
    Conjunct("last-get", "Once the last-stage sync fetched q's slot with the VM stopped, a stale q "
             "is marked outside L1 (which a later CLEAR or log stop erases).",
             lambda s, e: AND(IMP(AND(last_get_done(s), s["stale"]), OR(marked_nonkvm(s), iter_kept(s, e))),
                              IMP(AND(last_get_done(s), s["L1"]), AND(s["manual"], s["L1c"])))),
    Conjunct("last-l3", "Once the last-stage sync moved q into L3, nothing is left in L2, the "
             "slot copy or a design bitmap: the final drain sees every dirty page in bmap.",
             lambda s, e: AND(IMP(last_l2_taken(s), AND(NOT(s["L2"]), NOT(s["uns"]))),
                              IMP(last_l3_done(s), NOT(s["carry"])),
                              IMP(last_tail_done(s), NOT(AND(e.has_watcher, s["iter"]))))),
    Conjunct("drained", "After the final drain bmap is empty and q not stale.",
             lambda s, e: AND(IMP(s["mpc"] == M_CDONE, AND(NOT(s["bmap"]), NOT(s["stale"]))),
                              IMP(s["mpc"] == M_FINISH, NOT(s["stale"])))),
    Conjunct("completed", "A completed migration sends nothing more: q is not stale nor in flight.",
             lambda s, e: IMP(s["phase"] == P_COMPLETED, AND(NOT(s["stale"]), NOT(s["sr"]), NOT(s["vm"])))),
    Conjunct("bg-prologue", "background-v1: a page the next MODERN sync's prologue drops from "
             "iter_bmap (shadow set, bmap clear) must be marked elsewhere.",
             lambda s, e: IMP(AND(e.has_watcher, s["ready"], s["stale"], s["iter"], drop_candidate(s)),
                              marked_without_iter(s))),
    Conjunct("bg-modern", "background-v1: before the first mode flip no background bitmap holds q "
             "(only MODERN syncs write them; setup clears them).",
             lambda s, e: AND(IMP(AND(e.has_watcher, NOT(s["modern"])),
                                  AND(NOT(s["iter"]), NOT(s["shadow"]), NOT(s["bss"]))),
                              IMP(AND(e.has_watcher, IN(s["wpc"], (W_FLIPPED, W_SYNC, W_POST))), s["modern"]))),
    Conjunct("bg-joined", "background-v1: the watcher is joined before setup, cancel's end and "
             "the stop of the VM, so no watcher survives into the next attempt or the final drain "
             "(it starts after the setup sync, the state still SETUP).",
             lambda s, e: IMP(AND(e.has_watcher, OR(IN(s["mpc"], (M_INIT, M_EXIT, M_NONE)), last_stage(s),
                                                      AND(s["mpc"] == M_SYNC, s["mk"] == MK_SETUP))),
                              s["wpc"] == 0)),
    Conjunct("bg-flavour", "background-v1: the flavour a sync uses for q's block matches its owner "
             "and the mode (MODERN_BACKGROUND only for the watcher's sync; MODERN only once flipped).",
             lambda s, e: IMP(AND(e.has_watcher, IN(s["sy"], (Y_BLK, Y_BLK2, Y_CT, Y_CC, Y_QDONE, Y_CBD, Y_FOLD))),
                              AND((s["syf"] == F_MBG) == (s["syo"] == O_WATCHER), s["syf"] <= 2,
                                  IMP(s["syf"] != 0, s["modern"]),
                                  IMP(AND(s["mpc"] == M_SYNC, s["mk"] == MK_LAST, s["syo"] == O_MIG),
                                      s["syf"] == ITE(s["modern"], F_MITER, 0))))),
    Conjunct("bg-fresh", "background-v1: iter/shadow bits without the block's flag exist only inside "
             "the MODERN sync that is writing them; a shadow bit set by the running background "
             "sync is a copy of bmap. Without it a drop by the next prologue is unexplained.",
             lambda s, e: IMP(AND(e.has_watcher, OR(s["iter"], s["shadow"]), NOT(s["bss"])), AND(
                 IN(s["sy"], (Y_CT, Y_CC, Y_QDONE, Y_CBD, Y_FOLD)), s["syf"] != 0,
                 IMP(s["shadow"], s["bmap"])))),
    Conjunct("bg-fold", "background-v1: right after a MODERN_ITER fold, iter_bmap is inside bmap, "
             "so the tail may clear it.",
             lambda s, e: IMP(AND(e.has_watcher, s["sy"] == Y_FOLD, s["syf"] == F_MITER, s["iter"]), s["bmap"])),
)

BY_ID = {c.id: c for c in CONJUNCTS}


def invariant(s, enc, without: tuple = ()):
    """The conjunction of every conjunct (minus ``without``)."""
    return AND(*[c.pred(s, enc) for c in CONJUNCTS if c.id not in without])


def conjuncts_markdown() -> list[str]:
    """The inductive invariant's section of docs/invariants.md: each conjunct's id and why."""
    lines = ["", "## The inductive invariant of the prover", "",
             "Conjuncts over one arbitrary page q (`proofs/inductive.py`); each says what it",
             "states and why the proof needs it.", ""]
    return lines + [f"- `{c.id}`: {c.why}" for c in CONJUNCTS]
