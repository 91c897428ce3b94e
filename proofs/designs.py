"""Per-design deltas of the per-page encoding, mirroring the design class hierarchy of impl/."""
from __future__ import annotations

from dirtyproof.impl.designs import BackgroundV1, Design, IterateSync, Legacy, Periodic, Qemu101, Qemu110
from dirtyproof.impl.regions import innermost
from dirtyproof.impl.steps import KVM_CLEAR, L2_TEST_AND_CLEAR, WAIT

from .dual import AND, ITE, NOT, OR
from .encoding import BaseEncoding, Rule
from .project import project
from .state import (F_LEGACY, F_MBG, F_MITER, M_SEND, M_SYNC, M_TOP, MK_ITERS, MK_LAST, O_MIG, O_TIMER, O_WATCHER,
                    T_NONE, T_POST, T_SLEEP, T_SYNC, W_FLIPPED, W_LOOP, W_NONE, W_POST,
                    W_SYNC, Y_BEGIN, Y_BLK, Y_BLK2, Y_CBD, Y_FOLD, Y_POSTBLK, Y_QDONE, S_CBT, S_PICK)


class PeriodicEncoding(BaseEncoding):
    """QEMU 9.2+: a main-loop timer (with the BQL) runs ordinary syncs every 5 s."""

    design = "periodic"
    has_timer = True

    def sync_owners(self):
        """The migration thread and the timer run syncs."""
        return [(O_MIG, "migration"), (O_TIMER, "timer")]

    def setup_updates(self, s) -> dict:
        """``before_setup`` arms the timer in the same step."""
        return {**super().setup_updates(s), "tpc": T_SLEEP}

    def stop_threads(self, s) -> dict:
        """A deleted timer never fires again."""
        return {"tpc": T_NONE}

    def rules(self) -> list[Rule]:
        """Base rules plus the timer thread."""
        R = super().rules()
        R.append(Rule("timer", "stutter", True, (), lambda s, f: (s["tpc"] != T_NONE, {})))
        R.append(Rule("timer", "tick_sync", False, (), lambda s, f: (
            AND(s["tpc"] == T_SLEEP, self.bql_free(s)), dict(tpc=T_SYNC, sy=Y_BEGIN, syo=O_TIMER))))
        R.append(Rule("timer", "callback_returns", True, (), lambda s, f: (s["tpc"] == T_POST, dict(tpc=T_SLEEP))))
        return R


class IterateSyncEncoding(BaseEncoding):
    """The reviewer's alternative: ``ram_save_iterate`` syncs first when a sync is due."""

    design = "iterate-sync"
    iterate_sync = True

    def mig_rules(self) -> list[Rule]:
        """Base rules plus the sync at the start of ``ram_save_iterate``."""
        R = super().mig_rules()
        R.append(Rule("migration", "iterate_sync", False, (), lambda s, f: (
            AND(s["mpc"] == M_TOP, NOT(s["creq"]), self.bql_free(s)),
            dict(mpc=M_SYNC, mk=MK_ITERS, sy=Y_BEGIN, syo=O_MIG))))
        return R


class BackgroundV1Encoding(BaseEncoding):
    """The seed series v1: iter_bmap, shadow_bmap, the watcher and its background syncs."""

    design = "background-v1"
    has_watcher = True
    threads_step = True

    def sync_owners(self):
        """The migration thread and the watcher run syncs."""
        return [(O_MIG, "migration"), (O_WATCHER, "watcher")]

    def setup_updates(self, s) -> dict:
        """New zeroed iter/shadow bitmaps and flag; ``iteration_count = 0``."""
        return {**super().setup_updates(s), **dict(shadow=False, iter=False, bss=False, nsync=0)}

    def start_threads(self, s) -> dict:
        """The watcher is spawned; spawning it while the previous attempt's watcher lives is an error."""
        alive = s["wpc"] != W_NONE
        return dict(wpc=ITE(alive, s["wpc"], W_LOOP), wquit=False, err=OR(s["err"], alive))

    def stop_threads(self, s) -> dict:
        """``watcher_quit = True`` (the watcher exits at its next step)."""
        return {"wquit": True}

    def joined(self, s):
        """Completion and cancel join the watcher first."""
        return s["wpc"] == W_NONE

    def quit_threads(self, s) -> dict:
        """``migration_background_sync_cleanup`` posts the quit semaphore before the join."""
        return {"wquit": True}

    def mig_rules(self) -> list[Rule]:
        """Base rules plus the cancel's quit-and-join of the watcher."""
        R = super().mig_rules()
        R.append(Rule("migration", "cancel_join", True, (), lambda s, f: (
            AND(s["mpc"] == M_TOP, s["creq"], s["wpc"] != W_NONE), dict(wquit=True))))
        return R

    def flavour(self, s):
        """Read per block when the sync reaches it: background, or by ``sync_mode``."""
        return ITE(s["syo"] == O_WATCHER, F_MBG, ITE(s["modern"], F_MITER, F_LEGACY))

    def begin_updates(self, s, owner) -> dict:
        """Only ordinary syncs count as iterations."""
        if owner == O_WATCHER:
            return {}
        return {"nsync": ITE(s["nsync"] >= 2, 2, s["nsync"] + 1)}

    def l2_into(self, s, bits) -> dict:
        """LEGACY_ITER sets bmap; the MODERN flavours set iter_bmap."""
        leg = s["syf"] == F_LEGACY
        return dict(bmap=OR(s["bmap"], AND(leg, bits)), iter=OR(s["iter"], AND(NOT(leg), bits)))

    def xchg_updates(self, s) -> dict:
        """A background sync also copies bmap's word into shadow_bmap (overwrite)."""
        return {**self.l2_into(s, s["L2"]), "shadow": ITE(s["syf"] == F_MBG, s["bmap"], s["shadow"])}

    def slow_pre(self, s) -> dict:
        """A background sync sets shadow_bmap[q] if bmap[q] (never clears it)."""
        return {"shadow": OR(s["shadow"], AND(s["syf"] == F_MBG, s["bmap"]))}

    def prologue_rules(self, rule, at) -> None:
        """MODERN flavours after a background sync: drop from iter what was sent since."""
        cond = lambda s: AND(s["syf"] != F_LEGACY, s["bss"])  # noqa: E731
        rule("prologue", True, lambda s, f: (AND(at(s, Y_BLK), cond(s)), dict(
            iter=AND(s["iter"], NOT(AND(s["shadow"], NOT(s["bmap"])))), sy=Y_BLK2)))
        rule("no_prologue", False, lambda s, f: (AND(at(s, Y_BLK), NOT(cond(s))), dict(sy=Y_BLK2)))

    def tail_rules(self, rule, at) -> None:
        """MODERN_ITER folds iter into bmap, then clears shadow, iter and the flag; a background
        sync sets the flag."""
        miter = lambda s: s["syf"] == F_MITER  # noqa: E731
        rule("fold", True, lambda s, f: (AND(at(s, Y_CBD), miter(s)), dict(
            bmap=OR(s["bmap"], s["iter"]), sy=Y_FOLD)))
        rule("no_fold", False, lambda s, f: (AND(at(s, Y_CBD), NOT(miter(s))), dict(sy=Y_FOLD)))
        rule("modern_tail", True, lambda s, f: (AND(at(s, Y_FOLD), miter(s)), dict(
            shadow=False, iter=False, bss=False, sy=Y_POSTBLK)))
        rule("no_modern_tail", False, lambda s, f: (AND(at(s, Y_FOLD), NOT(miter(s))), dict(
            bss=OR(s["bss"], s["syf"] == F_MBG), sy=Y_POSTBLK)))

    def rules(self) -> list[Rule]:
        """Base rules plus the watcher thread."""
        R = super().rules()
        R.append(Rule("watcher", "stutter", True, (), lambda s, f: (s["wpc"] != W_NONE, {})))
        R.append(Rule("watcher", "exit", True, (), lambda s, f: (s["wpc"] == W_LOOP, dict(wpc=W_NONE))))
        R.append(Rule("watcher", "flip_mode", True, (), lambda s, f: (
            AND(s["wpc"] == W_LOOP, NOT(s["wquit"]), s["nsync"] >= 2), dict(modern=True, wpc=W_FLIPPED))))
        # with the BQL taken the watcher syncs whatever the quit flag or the phase now say
        R.append(Rule("watcher", "bg_sync", False, (), lambda s, f: (
            AND(s["wpc"] == W_FLIPPED, self.bql_free(s)),
            dict(wpc=W_SYNC, sy=Y_BEGIN, syo=O_WATCHER))))
        R.append(Rule("watcher", "bg_done", True, (), lambda s, f: (s["wpc"] == W_POST, dict(wpc=W_LOOP))))
        return R


class Qemu101Encoding(PeriodicEncoding):
    """QEMU 10.1 (fd0377150d5d): in the last stage the sender takes no owed chunk clear. The
    completion rework (7aaa1fc072ca) changes only thresholds, which the per-page state leaves free."""

    design = "qemu-10.1"

    def send_rules(self) -> list[Rule]:
        """The chunk take only outside the last stage; in it the pick goes straight to the take."""
        last = lambda s: s["mk"] == MK_LAST  # noqa: E731
        at = lambda s, pos: AND(s["mpc"] == M_SEND, s["ss"] == pos)  # noqa: E731
        out = []
        for r in super().send_rules():
            if r.name == "send_take_chunk":
                r = Rule(r.actor, r.name, r.yields, r.facts, lambda s, f: (
                    AND(at(s, S_PICK), s["pc"], s["cb"], NOT(last(s))), dict(cb=False, cpend=s["manual"], ss=S_CBT)))
            elif r.name == "send_no_chunk":
                r = Rule(r.actor, r.name, r.yields, r.facts, lambda s, f: (
                    AND(at(s, S_PICK), OR(NOT(AND(s["pc"], s["cb"])), last(s))), dict(ss=S_CBT, cpend=False)))
            out.append(r)
        return out


def _batched_slow_position(w, q, actor, step, rel):
    """QEMU 11.0's slow path in q's block: a per-page L2 -> bmap step (before or after q), then the
    block's CLEAR, one per memslot (q's slot's still to come, or done)."""
    rb = w.block_of(q)
    if rb.fast_path or step is None:
        return None
    if step.kind == L2_TEST_AND_CLEAR and innermost(actor, "sync_one_page") is None:
        return Y_BLK2 if step.page < q else Y_QDONE
    one = innermost(actor, "kvm_log_clear_one_slot")
    if one is None:
        return None
    s, qs = one.args[0].index, w.kvm.slot_of(q).index
    if step.kind == KVM_CLEAR:
        return Y_QDONE if s < qs else Y_CBD
    if step.kind == WAIT:
        return Y_QDONE if s <= qs else Y_CBD
    return None


class Qemu110Encoding(Qemu101Encoding):
    """QEMU 11.0 (e8a6d158dbfa): a slow-path block moves each dirty L2 bit into bmap in one step,
    then takes one CLEAR of the whole block (per memslot) before leaving ``bitmap_mutex``."""

    design = "qemu-11.0"
    batched_slow_clear = True
    position_hooks = (_batched_slow_position,)

    def project(self, w, q) -> dict:
        """The base projection with the batched slow path's positions."""
        return project(w, q, self.position_hooks)

    def sync_rules(self, owner, actor) -> list[Rule]:
        """The per-page slow path (test, CLEAR, set) becomes ``sync_slow_test`` (L2 test-and-clear
        and bmap test-and-set at q), then ``sync_slow_clear``: the block's CLEAR of q's slot, after
        q's step and whatever was dirty (``sync_slow_noclear`` in legacy KVM mode)."""
        R = []

        def at(s, pos):
            return AND(self.owner_at_sync(s, owner), s["sy"] == pos)

        slow = ("sync_slow_test", "sync_slow_skip", "sync_slow_clear", "sync_slow_noclear", "sync_slow_set",
                "sync_no_fill")
        for r in super().sync_rules(owner, actor):
            if r.name in slow:
                continue
            R.append(r)
        R.append(Rule(actor, "sync_slow_test", True, (), lambda s, f: (
            AND(at(s, Y_BLK2), NOT(s["fast"]), s["L2"]), {**self.l2_into(s, True), "L2": False, "sy": Y_QDONE})))
        R.append(Rule(actor, "sync_slow_skip", False, (), lambda s, f: (
            AND(at(s, Y_BLK2), NOT(s["fast"]), NOT(s["L2"])), dict(sy=Y_QDONE))))
        R.append(Rule(actor, "sync_slow_clear", True, (), lambda s, f: (
            AND(at(s, Y_QDONE), NOT(s["fast"]), s["manual"]), {**self.clear_q(s), "sy": Y_CBD})))
        R.append(Rule(actor, "sync_slow_noclear", False, (), lambda s, f: (
            AND(at(s, Y_QDONE), NOT(s["fast"]), NOT(s["manual"])), dict(sy=Y_CBD))))
        return R


ENCODINGS = {Legacy: BaseEncoding, Design: BaseEncoding, Periodic: PeriodicEncoding,
             IterateSync: IterateSyncEncoding, BackgroundV1: BackgroundV1Encoding,
             Qemu101: Qemu101Encoding, Qemu110: Qemu110Encoding}
