"""Projection of a concrete reference-model world onto one page ``q``: the abstract state the
encoding talks about, read from the world's fields, the ghost, each thread's declared regions
(the design-interface methods it is inside, with their arguments: impl/regions.py) and the record
of its last step (impl/steps.py). Never from a label's wording, a frame's function name or a
local variable."""
from __future__ import annotations

from dirtyproof.impl.designs.background_v1 import (LEGACY_ITER, MODERN_BACKGROUND, MODERN_ITER,
                                                   RAMBLOCK_SYN_MODERN, BackgroundV1)
from dirtyproof.impl.regions import innermost, names
from dirtyproof.impl.steps import (BMAP_TAKE, CANCELLED, CHUNK_TAKEN, CLEANUP, CLEAR_BMAP_SET, COMPLETE_DRAINED,
                                   DELIVER, INIT_BITMAPS, ITER_FOLD, ITER_PROLOGUE, ITER_TAIL, ITERATE_DONE, JOIN,
                                   ITERATION_FINISH, KVM_CLEAR, KVM_GET, KVM_OR, L2_XCHG, READ, SETUP_DONE,
                                   STREAM_COMPLETE, SYNC_DONE, THREADS_STARTED, VM_STOP, WAIT, WATCHER_FLIP,
                                   COMPLETION_END)

from .state import (F_LEGACY, F_MBG, F_MITER, M_CDONE, M_CSTART, M_EXIT, M_FINISH, M_INIT, M_NONE, M_POSTSYNC,
                    M_SEND, M_SYNC, M_TOP, M_VMSTOPPED, MK_EXACT, MK_ITERS, MK_LAST, MK_SETUP, O_MIG,
                    O_TIMER, O_WATCHER, P_ACTIVE, P_CANCELLED, P_COMPLETED, P_COMPLETING, P_NONE, P_SETUP,
                    S_CBT, S_ENTER, S_READ, S_TAKEN, T_NONE, T_POST, T_SLEEP, T_SYNC, W_FLIPPED, W_LOOP,
                    W_NONE, W_POST, W_SYNC, Y_BEGIN, Y_BLK, Y_BLK2, Y_CBD, Y_CC, Y_CT, Y_FOLD, Y_L3_PRE,
                    Y_LS_MID, Y_LS_POST, Y_LS_PRE, Y_NONE, Y_POSTBLK, Y_QDONE)

# WAIT_UNPLUG is QEMU's state between SETUP and ACTIVE: setup for the encoding
PHASES = {"setup": P_SETUP, "wait_unplug": P_SETUP, "active": P_ACTIVE, "completing": P_COMPLETING, "completed": P_COMPLETED,
          "cancelled": P_CANCELLED}


class ProjectionError(Exception):
    """A thread position the projection does not know: the encoding is out of date."""


def _slot_index(w, page):
    return w.kvm.slot_of(page).index


def _region(actor, name):
    return innermost(actor, name)


def sync_position(w, q, actor, hooks=()) -> int:
    """Where a thread inside ``migration_bitmap_sync`` is, relative to q, from its regions and its
    last step's record. ``hooks`` (a design encoding's ``position_hooks``) place steps of q's block
    the base does not know: ``hook(w, q, actor, step, rel) -> position or None``."""
    step = actor.step
    kind = step.kind if step is not None else None
    qs = _slot_index(w, q)
    qb = int(w.page_block[q])
    log = _region(actor, "kvm_physical_sync_dirty_bitmap")
    if log is not None:
        s = log.args[0].index
        if s != qs:
            return Y_LS_PRE if s < qs else Y_LS_POST
        if kind == KVM_GET:
            return Y_LS_MID
        if kind == KVM_OR:
            return Y_LS_POST
        return Y_LS_PRE
    blk = _region(actor, "ramblock_sync_dirty_bitmap")
    if blk is None:
        if kind == INIT_BITMAPS:
            return Y_BEGIN
        return Y_LS_POST                         # waiting for bitmap_mutex after the log sync
    rb = blk.args[0]
    if rb.index != qb:
        return Y_L3_PRE if rb.index < qb else Y_POSTBLK
    rel = q - rb.offset
    for hook in hooks:
        pos = hook(w, q, actor, step, rel)
        if pos is not None:
            return pos
    if kind == ITER_PROLOGUE:
        return Y_BLK2
    if kind == L2_XCHG:
        k = step.word - rb.offset // rb.word_bits
        return Y_BLK2 if k < rel // rb.word_bits else Y_QDONE
    if kind == CLEAR_BMAP_SET:
        return Y_CBD
    if kind == ITER_FOLD:
        return Y_FOLD
    if kind == ITER_TAIL:
        return Y_POSTBLK
    one = _region(actor, "sync_one_page")
    if one is not None:
        orb, k = one.args[0], one.args[1]
        page = orb.offset + k
        if page != q:
            return Y_BLK2 if page < q else Y_QDONE
        if kind == KVM_CLEAR:
            return Y_CC
        return Y_CT
    raise ProjectionError(f"unknown sync position: {step} in {names(actor)}")


def send_position(w, q, actor) -> dict:
    """Where the sender is inside one page send (``ram_find_and_save_block``), relative to q."""
    step = actor.step
    kind = step.kind if step is not None else None
    out = dict(ss=S_ENTER, pq=False, pc=False, cpend=False)
    sending = innermost(actor, "migration_bitmap_clear_dirty", "ram_save_page")
    if sending is None or _region(actor, "ram_find_and_save_block") is None or kind == DELIVER:
        return out
    rb, page = sending.args[0], sending.args[1]
    qb = int(w.page_block[q])
    pq = rb.index == qb and rb.offset + page == q
    pc = rb.index == qb and rb.chunk_of(page) == rb.chunk_of(q - rb.offset)
    out.update(pq=pq, pc=pc)
    qs = _slot_index(w, q)
    if kind == CHUNK_TAKEN:
        out.update(ss=S_CBT, cpend=pc and w.kvm.manual_protect)
    elif kind == KVM_CLEAR:
        out.update(ss=S_CBT, cpend=pc and w.kvm.manual_protect and step.slot < qs)
    elif kind == WAIT and step.lock == "slots_lock":
        s = _region(actor, "kvm_log_clear_one_slot").args[0].index
        out.update(ss=S_CBT, cpend=pc and w.kvm.manual_protect and s <= qs)
    elif kind == BMAP_TAKE:
        out.update(ss=S_TAKEN)
    elif kind == READ:
        out.update(ss=S_READ)
    else:
        raise ProjectionError(f"unknown send position: {step}")
    return out


def _mk(regions) -> int:
    if "ram_save_complete" in regions:
        return MK_LAST
    if "ram_state_pending_exact" in regions:
        return MK_EXACT
    if "ram_init_bitmaps" in regions:
        return MK_SETUP
    return MK_ITERS


def migration_pc(w, q, actor, st, hooks=()) -> None:
    """Fill the migration thread's position into ``st``."""
    if actor is None or actor.done:
        st["mpc"] = M_NONE
        return
    if actor.step is None:
        st["mpc"] = M_INIT
        return
    step, regs = actor.step, names(actor)
    kind = step.kind
    if "migrate_fd_cleanup" in regs or kind == ITERATION_FINISH:
        # after migration_iteration_finish: the cleanup's steps (savevm cleanup, the join, the
        # final state) are the encoding's M_EXIT
        st["mpc"] = M_EXIT
        return
    if kind == THREADS_STARTED or "qemu_savevm_wait_unplug" in regs:
        # helper threads started, the state not yet ACTIVE: still the end of setup
        st.update(mpc=M_POSTSYNC, mk=MK_SETUP)
        return
    if "migration_bitmap_sync" in regs or kind == INIT_BITMAPS:
        st["mk"] = _mk(regs)
        if kind == SYNC_DONE:
            st["mpc"] = M_POSTSYNC
        else:
            st.update(mpc=M_SYNC, syo=O_MIG, sy=sync_position(w, q, actor, hooks))
        return
    lock = step.lock if kind == WAIT else None
    if kind in (SETUP_DONE, ITERATE_DONE):
        st["mpc"] = M_TOP
    elif kind in (CLEANUP, CANCELLED):
        st["mpc"] = M_EXIT
    elif (kind in (STREAM_COMPLETE, COMPLETION_END) or "migration_completion_end" in regs
          or ("migration_iteration_finish" in regs and "migration_cancel" not in regs)):
        # the BQL dropped after the last stage, migration_completion_end (waiting for the BQL or
        # done) and migration_iteration_finish: the encoding's M_FINISH (the phase tells them apart)
        st["mpc"] = M_FINISH
    elif kind == JOIN:
        st["mpc"] = M_CSTART if "migration_completion" in regs else M_TOP
    elif kind == VM_STOP:
        st["mpc"] = M_VMSTOPPED
    elif kind == COMPLETE_DRAINED:
        st["mpc"] = M_CDONE
    elif lock == "BQL":
        st["mpc"] = M_CSTART if "migration_completion" in regs else (M_INIT if "ram_save_setup" not in regs
                                                                       and "migration_iteration_run" not in regs
                                                                       and "migration_cancel" not in regs
                                                                       else M_TOP)
    elif lock == "bitmap_mutex" and "ram_save_complete" not in regs:
        st["mpc"] = M_TOP
    elif "ram_save_iterate" in regs or "ram_save_complete" in regs:
        st.update(mpc=M_SEND, mk=MK_LAST if "ram_save_complete" in regs else MK_EXACT)
        st.update(send_position(w, q, actor))
    else:
        raise ProjectionError(f"unknown migration thread position: {step} in {regs}")


def helper_pc(w, q, name, st, hooks=()) -> None:
    """Fill the timer's or the watcher's position into ``st``."""
    actor = w.actors.get(name)
    key, none, idle = ("tpc", T_NONE, T_SLEEP) if name == "timer" else ("wpc", W_NONE, W_LOOP)
    if actor is None or actor.done:
        st[key] = none
        return
    if actor.step is None:
        st[key] = idle
        return
    step, regs = actor.step, names(actor)
    insync, post = (T_SYNC, T_POST) if name == "timer" else (W_SYNC, W_POST)
    if "migration_bitmap_sync" in regs:
        if step.kind == SYNC_DONE:
            st[key] = post
        else:
            st[key] = insync
            st.update(syo=O_TIMER if name == "timer" else O_WATCHER, sy=sync_position(w, q, actor, hooks))
    elif name == "watcher" and (step.kind == WATCHER_FLIP or (step.kind == WAIT and step.lock == "BQL")):
        st[key] = W_FLIPPED
    else:
        st[key] = idle


def project(w, q: int, hooks=()) -> dict:
    """The abstract state of page ``q`` in world ``w`` (``hooks``: see :func:`sync_position`)."""
    kvm, mig, d = w.kvm, w.mig, w.design
    bg = isinstance(d, BackgroundV1)        # the seed series' declared state (its attach sets it)
    rb = w.block_of(q)
    rel = q - rb.offset
    st = dict(manual=kvm.manual_protect, iset=kvm.mode == "initially_set", fast=rb.fast_path,
              stale=bool(w.src_version[q] != w.last_read[q]), deq=bool(w.dest_version[q] == w.src_version[q]),
              L1=kvm.L1.test(q), L1c=kvm.L1c.test(q), uns=bool(kvm.unsynced[_slot_index(w, q)]),
              WP=kvm.protected.test(q), L2=w.L2.test(q), bmap=rb.bmap.test(rel),
              cb=rb.clear_bmap.test(rb.chunk_of(rel)),
              carry=False, su=False,
              sr=q in w.ghost.in_flight,
              iter=("iter_bmap" in rb.extra_bitmaps and rb.iter_bmap.test(rel)),
              shadow=("shadow_bmap" in rb.extra_bitmaps and rb.shadow_bmap.test(rel)),
              bss=bg and rb.background_sync_shown_up,
              modern=bg and d.sync_mode == RAMBLOCK_SYN_MODERN,
              log=kvm.logging, ready=w.bitmaps_armed(), vm=w.vm_running,
              creq=mig is not None and mig.cancel_requested, wquit=bg and d.watcher_quit,
              err=False, pq=False, pc=False, cpend=False,
              mpc=M_NONE, mk=0, sy=Y_NONE, syo=0, syf=0, ss=0, tpc=T_NONE, wpc=W_NONE,
              phase=P_NONE if mig is None else PHASES[mig.phase],
              nsync=min(mig.iteration_count, 2) if mig is not None else 0)
    migration_pc(w, q, w.actors.get("migration"), st, hooks)
    helper_pc(w, q, "timer", st, hooks)
    helper_pc(w, q, "watcher", st, hooks)
    # the ghost's hands, read where the encoding has a variable for them: a slow-path sync between
    # q's L2 test-and-clear and its store (syncs hold the BQL: one at a time), a send between
    # taking q's bmap bit and reading it
    if st["sy"] in (Y_CT, Y_CC):
        st["carry"] = any(q in h.fetched for h in w.ghost.hands.values())
    if st["mpc"] == M_SEND:
        h = w.ghost.hands.get("migration")
        st["su"] = h is not None and q in h.taken
    if st["sy"] in (Y_BLK, Y_BLK2, Y_CT, Y_CC, Y_QDONE, Y_CBD, Y_FOLD):
        fl = d.flavour if bg else LEGACY_ITER
        st["syf"] = {LEGACY_ITER: F_LEGACY, MODERN_ITER: F_MITER, MODERN_BACKGROUND: F_MBG}[fl]
    return normalize(st)


def normalize(s: dict) -> dict:
    """Zero the variables that mean nothing in the current control state, so that states that
    differ only there compare equal."""
    s = dict(s)
    if s["sy"] not in (Y_BLK, Y_BLK2, Y_CT, Y_CC, Y_QDONE, Y_CBD, Y_FOLD):
        s["syf"] = 0
    if s["sy"] == 0:
        s["syo"] = 0
    if s["mpc"] not in (M_SYNC, M_POSTSYNC, M_SEND):
        s["mk"] = 0
    if s["mpc"] == M_SEND and s["mk"] != MK_LAST:
        s["mk"] = MK_EXACT
    if s["mpc"] != M_SEND:
        s["ss"] = 0
    if s["mpc"] != M_SEND or s["ss"] == S_ENTER:
        s.update(pq=False, pc=False, cpend=False)
    return s
