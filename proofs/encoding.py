"""The per-page transition system of the base design (QEMU before 9.2), one rule per kind of
atomic (micro-)step of every actor, written with :mod:`dual` operators.

A rule has an actor, a name, whether it *yields* (ends the concrete atomic step) and free
boolean *facts* about other pages (is the page being sent q? is q's L2 word non-zero because of
other pages?). A concrete step of an actor is a sequence of silent rules followed by one
yielding rule; the prover lets other actors interleave at every rule, which only adds behaviours
(sound over-approximation). Per-design encodings subclass :class:`BaseEncoding`, mirroring the
design classes, and override the few rules their design changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .dual import AND, IN, ITE, NOT, OR
from .state import (F_LEGACY, F_MBG, F_MITER, M_CDONE, M_CSTART, M_EXIT, M_FINISH, M_INIT, M_NONE, M_POSTSYNC,
                    M_SEND, M_SYNC, M_TOP, M_VMSTOPPED, MK_EXACT, MK_ITERS, MK_LAST, MK_SETUP, O_MIG,
                    O_TIMER, O_WATCHER, P_ACTIVE, P_CANCELLED, P_COMPLETED, P_COMPLETING, P_SETUP,
                    S_CBT, S_ENTER, S_PICK, S_READ, S_TAKEN, T_NONE, T_POST, T_SLEEP, T_SYNC, W_FLIPPED,
                    W_LOOP, W_NONE, W_POST, W_SYNC, Y_BEGIN, Y_BLK, Y_BLK2, Y_CBD, Y_CC, Y_CT, Y_FOLD,
                    Y_L3_PRE, Y_LS_MID, Y_LS_POST, Y_LS_PRE, Y_NONE, Y_POSTBLK, Y_QDONE)

L3_STATES = (Y_L3_PRE, Y_BLK, Y_BLK2, Y_CT, Y_CC, Y_QDONE, Y_CBD, Y_FOLD, Y_POSTBLK)


@dataclass(frozen=True)
class Rule:
    """One kind of micro-step: ``fn(s, f) -> (guard, updates)`` over state ``s`` and facts ``f``."""

    actor: str
    name: str
    yields: bool
    facts: tuple
    fn: Callable

    @property
    def id(self) -> str:
        """``actor.name``."""
        return f"{self.actor}.{self.name}"


def successor(s: dict, upd: dict) -> dict:
    """The state after applying ``upd`` to ``s`` (unmentioned variables keep their value)."""
    t = dict(s)
    t.update(upd)
    return t


class BaseEncoding:
    """The legacy design (syncs at setup, at the exact-pending check and at completion)."""

    design = "legacy"
    has_timer = False
    has_watcher = False
    iterate_sync = False
    # QEMU 11.0+ (e8a6d158dbfa): a slow-path block's remote clear comes once, after its L2 loop.
    # A declaration of the design's sync order that the invariant needs (l1c-owed): it cannot be
    # stated for every design, since the per-page slow path CLEARs q before its bmap step
    # (tests/test_qemu_current.py). QEMU 10.1's last-stage skip needs no flag: the invariant's
    # last-stage exemptions are stated for every design (proofs/inductive.py).
    batched_slow_clear = False

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def mig_bql(s):  # M_FINISH takes the BQL in its own step
        """The migration thread holds the BQL."""
        return OR(IN(s["mpc"], (M_SYNC, M_POSTSYNC, M_VMSTOPPED, M_CDONE)),
                  AND(s["mpc"] == M_SEND, s["mk"] == MK_LAST))

    @staticmethod
    def other_bql(s):
        """The timer or the watcher holds the BQL."""
        return OR(IN(s["tpc"], (T_SYNC, T_POST)), IN(s["wpc"], (W_SYNC, W_POST)))

    def bql_free(self, s):
        """Nobody holds the BQL."""
        return AND(NOT(self.mig_bql(s)), NOT(self.other_bql(s)))

    @staticmethod
    def sync_mutex(s):
        """The running sync holds ``bitmap_mutex``."""
        return IN(s["sy"], L3_STATES)

    def stop_threads(self, s) -> dict:
        """Updates of ``stop_threads`` (none in the base design)."""
        return {}

    def joined(self, s):
        """The threads joined before completion and cancel have exited (none in the base design)."""
        return True

    def quit_threads(self, s) -> dict:
        """What is told to quit before such a join (nothing in the base design)."""
        return {}

    def log_stop(self) -> dict:
        """Updates of ``kvm.log_stop``."""
        return dict(log=False, L1=False, L1c=False, WP=False, uns=False)

    def flavour(self, s):
        """Flavour of the sync for q's block (only background-v1 has more than one)."""
        return F_LEGACY

    # -- the rule table ------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        """Every rule of the design."""
        out = self.env_rules() + self.mig_rules() + self.send_rules()
        for owner, actor in self.sync_owners():
            out += self.sync_rules(owner, actor)
        return out

    def sync_owners(self):
        """(owner id, actor name) of every thread that runs syncs."""
        return [(O_MIG, "migration")]

    def env_rules(self) -> list[Rule]:
        """vCPU and device writes, the clock and the management interface."""
        R = []
        R.append(Rule("vcpu", "write_q", True, (), lambda s, f: (s["vm"], dict(
            stale=True, deq=False, L1=OR(s["L1"], AND(s["log"], s["WP"])), WP=AND(s["WP"], NOT(s["log"]))))))
        R.append(Rule("vcpu", "write_other", True, (), lambda s, f: (s["vm"], {})))
        R.append(Rule("device", "write_q", True, (), lambda s, f: (s["vm"], dict(stale=True, deq=False, L2=True))))
        R.append(Rule("device", "write_other", True, (), lambda s, f: (s["vm"], {})))
        R.append(Rule("clock", "tick", True, (), lambda s, f: (True, {})))
        # no new migration from a source that completed one (it stays stopped, in postmigrate)
        R.append(Rule("mgmt", "start", True, (), lambda s, f: (AND(s["mpc"] == M_NONE, s["phase"] != P_COMPLETED), dict(
            mpc=M_INIT, phase=P_SETUP, ready=False, creq=False, stale=True, deq=False, su=False,
            sr=False, carry=False, nsync=0, mk=0, ss=0, pq=False, pc=False, cpend=False))))
        # QMP needs the BQL: besides SETUP/ACTIVE, a cancel lands in the completion only where
        # it dropped the BQL before migration_completion_end (M_FINISH, not yet COMPLETED)
        R.append(Rule("mgmt", "cancel", True, (), lambda s, f: (AND(
            s["mpc"] != M_NONE, NOT(s["creq"]), OR(IN(s["phase"], (P_SETUP, P_ACTIVE)), AND(
                s["phase"] == P_COMPLETING, s["mpc"] == M_FINISH, self.bql_free(s)))), dict(creq=True))))
        R.append(Rule("mgmt", "switchover", True, (), lambda s, f: (AND(
            s["mpc"] != M_NONE, IN(s["phase"], (P_SETUP, P_ACTIVE))), {})))
        return R

    def setup_updates(self, s) -> dict:
        """``ram_list_init_bitmaps`` and ``log_start`` at q, then the first sync begins."""
        return dict(bmap=True, cb=False, ready=True, log=True, L1c=False, uns=False, L1=s["iset"],
                    WP=NOT(s["iset"]), mpc=M_SYNC, mk=MK_SETUP, sy=Y_BEGIN, syo=O_MIG)

    # whether ``start_threads`` starts threads, in a step of its own before the state is ACTIVE
    threads_step = False

    def start_threads(self, s) -> dict:
        """Updates of ``start_threads`` at the end of setup (none in the base design)."""
        return {}

    def mig_rules(self) -> list[Rule]:
        """The migration thread outside sends and syncs."""
        R = []
        R.append(Rule("migration", "stutter", True, (), lambda s, f: (s["mpc"] != M_NONE, {})))
        R.append(Rule("migration", "setup", True, (), lambda s, f: (
            AND(s["mpc"] == M_INIT, self.bql_free(s)), self.setup_updates(s))))
        if self.threads_step:
            # the helper threads start after setup, the state still SETUP: a step of its own
            R.append(Rule("migration", "threads_started", True, (), lambda s, f: (
                AND(s["mpc"] == M_POSTSYNC, s["mk"] == MK_SETUP, s["phase"] == P_SETUP, s["wpc"] == W_NONE),
                self.start_threads(s))))
        R.append(Rule("migration", "setup_done", True, (), lambda s, f: (
            AND(s["mpc"] == M_POSTSYNC, s["mk"] == MK_SETUP),
            {**dict(phase=P_ACTIVE, mpc=M_TOP), **({} if self.threads_step else self.start_threads(s))})))
        # cancel: migration_iteration_finish stops the threads; the cleanup (M_EXIT) then stops
        # dirty logging (postponed while the VM is stopped), and the state becomes CANCELLED
        R.append(Rule("migration", "cancel", True, (), lambda s, f: (
            AND(s["mpc"] == M_TOP, s["creq"], self.bql_free(s), self.joined(s)),
            {**self.stop_threads(s), **dict(mpc=M_EXIT)})))
        R.append(Rule("migration", "savevm_cleanup", True, (), lambda s, f: (
            AND(s["mpc"] == M_EXIT, self.bql_free(s), s["vm"]), {**self.log_stop(), **dict(ready=False)})))
        R.append(Rule("migration", "cancelled", True, (), lambda s, f: (
            AND(s["mpc"] == M_EXIT, s["creq"], NOT(s["log"]), s["phase"] != P_COMPLETED), dict(phase=P_CANCELLED))))
        R.append(Rule("migration", "exit", True, (), lambda s, f: (
            AND(s["mpc"] == M_EXIT, IN(s["phase"], (P_COMPLETED, P_CANCELLED))), dict(mpc=M_NONE))))
        R.append(Rule("migration", "exact_sync", False, (), lambda s, f: (
            AND(s["mpc"] == M_TOP, NOT(s["creq"]), self.bql_free(s)),
            dict(mpc=M_SYNC, mk=MK_EXACT, sy=Y_BEGIN, syo=O_MIG))))
        # no cancel test: the thread may have passed the loop's check already (it waits for the
        # mutex after the exact sync's bql_unlock, a step of its own) when the cancel comes
        R.append(Rule("migration", "iterate", False, (), lambda s, f: (
            AND(s["mpc"] == M_TOP, NOT(self.sync_mutex(s))),
            dict(mpc=M_SEND, mk=MK_EXACT, ss=S_ENTER))))
        R.append(Rule("migration", "after_exact_complete", False, (), lambda s, f: (
            AND(s["mpc"] == M_POSTSYNC, s["mk"] == MK_EXACT), {**self.quit_threads(s), "mpc": M_CSTART})))
        R.append(Rule("migration", "after_sync_send", False, (), lambda s, f: (
            AND(s["mpc"] == M_POSTSYNC, IN(s["mk"], (MK_EXACT, MK_ITERS, MK_LAST))),
            dict(mpc=M_SEND, ss=S_ENTER, mk=ITE(s["mk"] == MK_LAST, MK_LAST, MK_EXACT)))))
        R.append(Rule("migration", "vm_stop", True, (), lambda s, f: (
            AND(s["mpc"] == M_CSTART, self.bql_free(s), self.joined(s)),
            dict(phase=P_COMPLETING, vm=False, mpc=M_VMSTOPPED))))
        R.append(Rule("migration", "last_sync", False, (), lambda s, f: (
            s["mpc"] == M_VMSTOPPED, dict(mpc=M_SYNC, mk=MK_LAST, sy=Y_BEGIN, syo=O_MIG))))
        # the stream is complete and the BQL dropped; migration_completion_end then takes it and
        # sets COMPLETED unless a cancel came in between (the state is no longer ACTIVE)
        R.append(Rule("migration", "completed", True, (), lambda s, f: (
            s["mpc"] == M_CDONE, dict(mpc=M_FINISH))))
        R.append(Rule("migration", "completion_end", True, (), lambda s, f: (
            AND(s["mpc"] == M_FINISH, s["phase"] == P_COMPLETING, NOT(s["creq"]), self.bql_free(s)),
            dict(phase=P_COMPLETED))))
        # completion: migration_iteration_finish stops the threads; the VM stays stopped, so the
        # cleanup's dirty-log stop is postponed (savevm_cleanup above is not enabled)
        R.append(Rule("migration", "cleanup", True, (), lambda s, f: (
            AND(s["mpc"] == M_FINISH, self.bql_free(s), OR(s["phase"] == P_COMPLETED, s["creq"])),
            {**self.stop_threads(s), **dict(mpc=M_EXIT, vm=OR(s["vm"], s["creq"]))})))
        return R

    def clear_q(self, s) -> dict:
        """KVM_CLEAR_DIRTY_LOG of q with the mask taken from L1c (manual mode, logging on)."""
        on = s["log"]
        return dict(L1=AND(s["L1"], NOT(AND(on, s["L1c"]))), WP=OR(s["WP"], AND(on, s["L1c"])),
                    L1c=AND(s["L1c"], NOT(on)))

    def send_rules(self) -> list[Rule]:
        """One page send under ``bitmap_mutex``: find, owed chunk clear, bmap take, read, deliver."""
        R = []
        sending = lambda s, pos: AND(s["mpc"] == M_SEND, s["ss"] == pos)  # noqa: E731
        R.append(Rule("migration", "send_leave", True, (), lambda s, f: (
            AND(sending(s, S_ENTER), s["mk"] != MK_LAST), dict(mpc=M_TOP))))
        R.append(Rule("migration", "send_drained", True, (), lambda s, f: (
            AND(sending(s, S_ENTER), s["mk"] == MK_LAST, NOT(s["bmap"])), dict(mpc=M_CDONE))))
        R.append(Rule("migration", "send_pick", False, ("is_q", "in_chunk"), lambda s, f: (
            AND(sending(s, S_ENTER), OR(NOT(f["is_q"]), AND(s["bmap"], f["in_chunk"]))),
            dict(ss=S_PICK, pq=f["is_q"], pc=f["in_chunk"], cpend=False))))
        R.append(Rule("migration", "send_take_chunk", True, (), lambda s, f: (
            AND(sending(s, S_PICK), s["pc"], s["cb"]), dict(cb=False, cpend=s["manual"], ss=S_CBT))))
        R.append(Rule("migration", "send_no_chunk", False, (), lambda s, f: (
            AND(sending(s, S_PICK), NOT(AND(s["pc"], s["cb"]))), dict(ss=S_CBT, cpend=False))))
        R.append(Rule("migration", "send_clear_q", True, (), lambda s, f: (
            AND(sending(s, S_CBT), s["cpend"], s["sy"] != Y_LS_MID), {**self.clear_q(s), "cpend": False})))
        R.append(Rule("migration", "send_take_bmap", True, (), lambda s, f: (
            AND(sending(s, S_CBT), NOT(s["cpend"])),
            dict(su=s["pq"], bmap=AND(s["bmap"], NOT(s["pq"])), ss=S_TAKEN))))
        R.append(Rule("migration", "send_read", True, (), lambda s, f: (
            sending(s, S_TAKEN), dict(stale=AND(s["stale"], NOT(s["pq"])), su=False,
                                      sr=OR(s["sr"], s["pq"]), ss=S_READ))))
        R.append(Rule("migration", "send_deliver", True, (), lambda s, f: (
            sending(s, S_READ), dict(deq=ITE(s["pq"], NOT(s["stale"]), s["deq"]), sr=False,
                                     ss=S_ENTER, pq=False, pc=False))))
        return R

    def send_flags(self, s):
        """The inductive invariant's ``send-flags`` conjunct for this send order (find, owed
        chunk clear, bmap take, read, deliver): an encoding that reorders the send states its own."""
        from .inductive import send_flags
        return send_flags(s)

    # -- syncs -----------------------------------------------------------------------------------
    def owner_at_sync(self, s, owner):
        """The owner thread is inside a sync."""
        pc = {O_MIG: ("mpc", M_SYNC), O_TIMER: ("tpc", T_SYNC), O_WATCHER: ("wpc", W_SYNC)}[owner]
        return AND(s[pc[0]] == pc[1], s["syo"] == owner)

    def sync_end(self, owner) -> dict:
        """Where the owner continues after the sync."""
        return {O_MIG: dict(mpc=M_POSTSYNC), O_TIMER: dict(tpc=T_POST), O_WATCHER: dict(wpc=W_POST)}[owner]

    def begin_updates(self, s, owner) -> dict:
        """``dirty_sync_count += 1`` and friends (nothing at q in the base design)."""
        return {}

    def l2_into(self, s, bits) -> dict:
        """Where an L2->L3 sync puts q's dirty bit (``bmap`` in the base design)."""
        return dict(bmap=OR(s["bmap"], bits))

    def sync_rules(self, owner, actor) -> list[Rule]:
        """Log sync (GET, OR per slot) and the L2->L3 sync of q's block, fast or slow path."""
        R = []

        def at(s, pos):
            return AND(self.owner_at_sync(s, owner), s["sy"] == pos)

        def rule(name, yields, fn, facts=()):
            R.append(Rule(actor, f"sync_{name}", yields, facts, fn))

        rule("begin", False, lambda s, f: (at(s, Y_BEGIN), {**self.begin_updates(s, owner), "sy": Y_LS_PRE}))
        rule("get", True, lambda s, f: (at(s, Y_LS_PRE), dict(
            L1c=ITE(s["log"], s["L1"], s["L1c"]), L1=AND(s["L1"], OR(NOT(s["log"]), s["manual"])),
            WP=OR(s["WP"], AND(s["log"], NOT(s["manual"]), s["L1"])), uns=OR(s["uns"], s["log"]),
            sy=Y_LS_MID)))
        rule("or", True, lambda s, f: (at(s, Y_LS_MID), dict(L2=OR(s["L2"], s["L1c"]), uns=False, sy=Y_LS_POST)))
        rule("lock", False, lambda s, f: (AND(at(s, Y_LS_POST), s["mpc"] != M_SEND), dict(sy=Y_L3_PRE)))
        rule("enter_block", False, lambda s, f: (at(s, Y_L3_PRE), dict(sy=Y_BLK, syf=self.flavour(s))))
        self.prologue_rules(rule, at)
        rule("xchg", True, lambda s, f: (AND(at(s, Y_BLK2), s["fast"], OR(s["L2"], f["others"])),
                                         {**self.xchg_updates(s), "L2": False, "sy": Y_QDONE}), ("others",))
        rule("skip_word", False, lambda s, f: (AND(at(s, Y_BLK2), s["fast"], NOT(s["L2"])), dict(sy=Y_QDONE)))
        rule("slow_test", True, lambda s, f: (
            AND(at(s, Y_BLK2), NOT(s["fast"]), OR(s["L2"], AND(s["manual"], s["L1c"]))),
            {**self.slow_pre(s), **dict(carry=s["L2"], L2=False, sy=Y_CT)}))
        rule("slow_skip", False, lambda s, f: (
            AND(at(s, Y_BLK2), NOT(s["fast"]), NOT(s["L2"]), NOT(AND(s["manual"], s["L1c"]))),
            {**self.slow_pre(s), **dict(sy=Y_QDONE)}))
        rule("slow_clear", True, lambda s, f: (AND(at(s, Y_CT), s["manual"]), {**self.clear_q(s), "sy": Y_CC}))
        rule("slow_noclear", False, lambda s, f: (AND(at(s, Y_CT), NOT(s["manual"])), dict(sy=Y_CC)))
        rule("slow_set", False, lambda s, f: (at(s, Y_CC), {**self.slow_set(s), "carry": False, "sy": Y_QDONE}))
        rule("clear_bmap_fill", True, lambda s, f: (AND(at(s, Y_QDONE), s["fast"]), dict(cb=True, sy=Y_CBD)))
        rule("no_fill", False, lambda s, f: (AND(at(s, Y_QDONE), NOT(s["fast"])), dict(sy=Y_CBD)))
        self.tail_rules(rule, at)
        rule("end", True, lambda s, f: (at(s, Y_POSTBLK), {**dict(sy=Y_NONE), **self.sync_end(owner)}))
        return R

    def prologue_rules(self, rule, at) -> None:
        """Before q's block's pages: nothing in the base design."""
        rule("no_prologue", False, lambda s, f: (at(s, Y_BLK), dict(sy=Y_BLK2)))

    def xchg_updates(self, s) -> dict:
        """Fast path: ``bits = xchg(L2 word, 0)``, ``bmap |= bits``, at q."""
        return self.l2_into(s, s["L2"])

    def slow_pre(self, s) -> dict:
        """Slow path, before q's L2 test-and-clear: nothing in the base design."""
        return {}

    def slow_set(self, s) -> dict:
        """Slow path after the remote clear: ``test_and_set(bmap[q])`` if the page was dirty."""
        return self.l2_into(s, s["carry"])

    def tail_rules(self, rule, at) -> None:
        """After q's block's pages: nothing more in the base design."""
        rule("no_tail", False, lambda s, f: (at(s, Y_CBD), dict(sy=Y_POSTBLK)))
