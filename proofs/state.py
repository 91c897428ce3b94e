"""The per-page abstract state: what the prover knows about one arbitrary page ``q``.

Every variable is a boolean or a small enumeration. Layer bits are q's bits; the thread program
counters are the positions of the threads *relative to q* (a sync cursor before/at/after q, the
page being sent is q or not, in q's clear_bmap chunk or not). See docs/proofs.md.
"""
from __future__ import annotations

import z3

# -- enumerations ------------------------------------------------------------------------------
# migration thread program counter
M_NONE, M_INIT, M_SYNC, M_POSTSYNC, M_TOP, M_SEND, M_CSTART, M_VMSTOPPED, M_CDONE, M_EXIT, M_FINISH = range(11)
# what the migration thread's current sync (or send loop) is for
MK_SETUP, MK_EXACT, MK_ITERS, MK_LAST = range(4)
# the one sync in progress (syncs hold the BQL, so there is at most one), relative to q
(Y_NONE, Y_BEGIN, Y_LS_PRE, Y_LS_MID, Y_LS_POST, Y_L3_PRE, Y_BLK, Y_BLK2, Y_CT, Y_CC, Y_QDONE, Y_CBD,
 Y_FOLD, Y_POSTBLK) = range(14)
# its owner
O_MIG, O_TIMER, O_WATCHER = range(3)
# flavour of the sync for q's block (background-v1)
F_LEGACY, F_MITER, F_MBG = range(3)
# sender position inside one page send
S_ENTER, S_PICK, S_CBT, S_TAKEN, S_READ = range(5)
# timer and watcher threads
T_NONE, T_SLEEP, T_SYNC, T_POST = range(4)
W_NONE, W_LOOP, W_FLIPPED, W_SYNC, W_POST = range(5)
# migration phase
P_NONE, P_SETUP, P_ACTIVE, P_COMPLETING, P_COMPLETED, P_CANCELLED = range(6)

ENUMS = {
    "mpc": ("M_NONE", "M_INIT", "M_SYNC", "M_POSTSYNC", "M_TOP", "M_SEND", "M_CSTART", "M_VMSTOPPED",
            "M_CDONE", "M_EXIT", "M_FINISH"),
    "mk": ("SETUP", "EXACT", "ITERS", "LAST"),
    "sy": ("Y_NONE", "Y_BEGIN", "Y_LS_PRE", "Y_LS_MID", "Y_LS_POST", "Y_L3_PRE", "Y_BLK", "Y_BLK2", "Y_CT",
           "Y_CC", "Y_QDONE", "Y_CBD", "Y_FOLD", "Y_POSTBLK"),
    "syo": ("mig", "timer", "watcher"),
    "syf": ("LEGACY_ITER", "MODERN_ITER", "MODERN_BACKGROUND"),
    "ss": ("S_ENTER", "S_PICK", "S_CBT", "S_TAKEN", "S_READ"),
    "tpc": ("T_NONE", "T_SLEEP", "T_SYNC", "T_POST"),
    "wpc": ("W_NONE", "W_LOOP", "W_FLIPPED", "W_SYNC", "W_POST"),
    "phase": ("none", "setup", "active", "completing", "completed", "cancelled"),
    "nsync": ("0", "1", ">=2"),
}

# -- the variables, with a sentence each ---------------------------------------------------------
BOOLS = {
    # configuration facts (constant along a run)
    "manual": "KVM runs with manual dirty-log protect (manual or initially_set mode)",
    "iset": "KVM initially-set mode",
    "fast": "q's RAMBlock is 64-page aligned (fast-path sync)",
    # the truth
    "stale": "q's source version differs from the version last read by a send",
    "deq": "the destination holds q's current source version",
    # layers at q
    "L1": "KVM dirty log bit of q", "L1c": "QEMU's slot copy (last GET) bit of q",
    "uns": "q's memslot was fetched by GET and not yet OR-ed into L2",
    "WP": "q is write-protected", "L2": "global dirty bitmap bit of q", "bmap": "bmap bit of q",
    "cb": "clear_bmap bit of q's chunk (remote clear owed)",
    "carry": "q sits in a slow-path sync's local variable", "su": "a send has taken q's bmap bit, not read it",
    "sr": "a send has read q and not delivered it",
    "iter": "background-v1 iter_bmap bit of q", "shadow": "background-v1 shadow_bmap bit of q",
    "bss": "background-v1 background_sync_shown_up of q's block", "modern": "background-v1 sync_mode == MODERN",
    # globals
    "log": "dirty logging on", "ready": "bitmaps initialised (coverage owed)", "vm": "vCPUs and devices run",
    "creq": "cancel requested", "wquit": "watcher told to quit",
    "err": "the model raised a concurrency error (a thread spawned twice)",
    # sender facts about the page p it is sending
    "pq": "the page being sent is q", "pc": "the page being sent is in q's clear_bmap chunk",
    "cpend": "the CLEAR of q's memslot for the chunk being cleared is still to come",
}
INTS = {name: len(vals) for name, vals in ENUMS.items()}
CONFIG_VARS = ("manual", "iset", "fast")
VARS = tuple(BOOLS) + tuple(INTS)


def symbolic(tag: str) -> dict:
    """A fresh symbolic state: one Z3 constant per variable, suffixed with ``tag``."""
    s = {}
    for v in BOOLS:
        s[v] = z3.Bool(f"{v}_{tag}")
    for v in INTS:
        s[v] = z3.Int(f"{v}_{tag}")
    return s


def domain(s: dict):
    """Range constraints of the enumeration variables of a symbolic state."""
    return z3.And(*[z3.And(s[v] >= 0, s[v] < n) for v, n in INTS.items()])


def initial(manual: bool, iset: bool, fast: bool) -> dict:
    """The concrete abstract state of a fresh world: RAMBlock creation has marked q dirty in L2."""
    s = {v: False for v in BOOLS}
    s.update({v: 0 for v in INTS})
    s.update(manual=manual, iset=iset, fast=fast, stale=True, L2=True, vm=True, phase=P_NONE)
    return s


def show(s: dict) -> str:
    """A compact readable rendering of a concrete abstract state (set booleans and enum names)."""
    parts = [v for v in BOOLS if v not in CONFIG_VARS and s.get(v) is True]
    for v, names in ENUMS.items():
        val = s.get(v, 0)
        if val:
            parts.append(f"{v}={names[val] if 0 <= val < len(names) else val}")
    return " ".join(parts)
