"""Projection of a concrete reference-model world onto one page ``q``: the abstract state the
encoding talks about, read from the world's fields and from the suspended generator frames of
its threads (function names, locals and the label of the last yield)."""
from __future__ import annotations

import inspect

from .state import (F_LEGACY, F_MBG, F_MITER, M_CDONE, M_CSTART, M_EXIT, M_FINISH, M_INIT, M_NONE, M_POSTSYNC,
                    M_SEND, M_SYNC, M_TOP, M_VMSTOPPED, MK_EXACT, MK_ITERS, MK_LAST, MK_SETUP, O_MIG,
                    O_TIMER, O_WATCHER, P_ACTIVE, P_CANCELLED, P_COMPLETED, P_COMPLETING, P_NONE, P_SETUP,
                    S_CBT, S_ENTER, S_READ, S_TAKEN, T_NONE, T_POST, T_SLEEP, T_SYNC, W_FLIPPED, W_LOOP,
                    W_NONE, W_POST, W_SYNC, Y_BEGIN, Y_BLK, Y_BLK2, Y_CBD, Y_CC, Y_CT, Y_FOLD, Y_L3_PRE,
                    Y_LS_MID, Y_LS_POST, Y_LS_PRE, Y_NONE, Y_POSTBLK, Y_QDONE)

PHASES = {"setup": P_SETUP, "active": P_ACTIVE, "completing": P_COMPLETING, "completed": P_COMPLETED,
          "cancelled": P_CANCELLED}
SYNC_DONE = "migration_bitmap_sync done"


class ProjectionError(Exception):
    """A thread position the projection does not know: the encoding is out of date."""


def frames(actor) -> list:
    """The suspended frames of an actor's generator stack, outermost first: (name, locals)."""
    out, g = [], actor.gen
    while g is not None and inspect.isgenerator(g):
        f = g.gi_frame
        if f is None:
            break
        out.append((f.f_code.co_name, f.f_locals))
        inner = g.gi_yieldfrom
        if inner is None:
            # a step that drives another step by hand (``next(gen)``, as a wrapper that edits
            # what each inner step did): follow it through its local ``gen``
            inner = f.f_locals.get("gen")
            if not (inspect.isgenerator(inner) and inner.gi_frame is not None):
                inner = None
        g = inner
    return out


def _frame(fr, name):
    for n, loc in reversed(fr):
        if n == name:
            return loc
    return None


def _slot_index(w, page):
    return w.kvm.slot_of(page).index


def sync_position(w, q, fr, label, hooks=()) -> int:
    """Where a thread inside ``migration_bitmap_sync`` is, relative to q. ``hooks`` (a design
    encoding's ``position_hooks``) map step labels of q's block the base does not know:
    ``hook(w, q, fr, label, rel) -> position or None``."""
    qs = _slot_index(w, q)
    qb = int(w.page_block[q])
    log = _frame(fr, "memory_global_dirty_log_sync")
    if log is not None:
        s = log["s"].index
        if s != qs:
            return Y_LS_PRE if s < qs else Y_LS_POST
        if label.startswith("KVM_GET_DIRTY_LOG"):
            return Y_LS_MID
        if "OR-ed" in label:
            return Y_LS_POST
        return Y_LS_PRE
    blk = _frame(fr, "ramblock_sync_dirty_bitmap")
    if blk is None:
        if label.startswith("ram_init_bitmaps"):
            return Y_BEGIN
        return Y_LS_POST                         # waiting for bitmap_mutex after the log sync
    rb = blk["rb"]
    if rb.index != qb:
        return Y_L3_PRE if rb.index < qb else Y_POSTBLK
    rel = q - rb.offset
    for hook in hooks:
        pos = hook(w, q, fr, label, rel)
        if pos is not None:
            return pos
    if "&= ~(shadow_bmap" in label:
        return Y_BLK2
    if "xchg L2 word" in label:
        k = _frame(fr, "cpu_physical_memory_sync_dirty_bitmap")["k"]
        return Y_BLK2 if k < rel // rb.word_bits else Y_QDONE
    if "clear_bmap all set" in label:
        return Y_CBD
    if "folded into bmap" in label:
        return Y_FOLD
    if "iter_dirty_pages" in label:
        return Y_POSTBLK
    one = _frame(fr, "sync_one_page")
    if one is not None:
        page = one["page"]
        if page != q:
            return Y_BLK2 if page < q else Y_QDONE
        if label.startswith("KVM_CLEAR_DIRTY_LOG"):
            return Y_CC
        return Y_CT
    raise ProjectionError(f"unknown sync position: {label!r} in {[n for n, _ in fr]}")


def send_position(w, q, fr, label) -> dict:
    """Where the sender is inside one page send (``ram_find_and_save_block``), relative to q."""
    find = _frame(fr, "ram_find_and_save_block")
    out = dict(ss=S_ENTER, pq=False, pc=False, cpend=False)
    if find is None or "rb" not in find or label.startswith("deliver"):
        return out
    rb, page = find["rb"], find["page"]
    qb = int(w.page_block[q])
    pq = rb.index == qb and rb.offset + page == q
    pc = rb.index == qb and rb.chunk_of(page) == rb.chunk_of(q - rb.offset)
    out.update(pq=pq, pc=pc)
    qs = _slot_index(w, q)
    if "chunk" in label and "taken" in label:
        out.update(ss=S_CBT, cpend=pc and w.kvm.manual_protect)
    elif label.startswith("KVM_CLEAR_DIRTY_LOG"):
        done = int(label.split("slot ")[1].split()[0])
        out.update(ss=S_CBT, cpend=pc and w.kvm.manual_protect and done < qs)
    elif label.startswith("wait for slots_lock"):
        s = _frame(fr, "memory_region_clear_dirty_bitmap")["s"].index
        out.update(ss=S_CBT, cpend=pc and w.kvm.manual_protect and s <= qs)
    elif "bmap test-and-clear" in label:
        out.update(ss=S_TAKEN)
    elif label.startswith("read page"):
        out.update(ss=S_READ)
    else:
        raise ProjectionError(f"unknown send position: {label!r}")
    return out


def _mk(names) -> int:
    if "ram_save_complete" in names:
        return MK_LAST
    if "ram_state_pending_exact" in names:
        return MK_EXACT
    if "ram_init_bitmaps" in names:
        return MK_SETUP
    return MK_ITERS


def migration_pc(w, q, actor, st, hooks=()) -> None:
    """Fill the migration thread's position into ``st``."""
    if actor is None or actor.done:
        st["mpc"] = M_NONE
        return
    if inspect.getgeneratorstate(actor.gen) == inspect.GEN_CREATED:
        st["mpc"] = M_INIT
        return
    fr, label = frames(actor), actor.label
    names = [n for n, _ in fr]
    if "migration_bitmap_sync" in names or label.startswith("ram_init_bitmaps"):
        st["mk"] = _mk(names)
        if label.startswith(SYNC_DONE):
            st["mpc"] = M_POSTSYNC
        else:
            st.update(mpc=M_SYNC, syo=O_MIG, sy=sync_position(w, q, fr, label, hooks))
        return
    if label.startswith("setup done") or label.startswith("ram_save_iterate:"):
        st["mpc"] = M_TOP
    elif label.startswith("cleanup:") or label.startswith("migration cancelled"):
        st["mpc"] = M_EXIT
    elif label.startswith("stream complete") or "migration_iteration_finish" in names:
        st["mpc"] = M_FINISH
    elif label.startswith("join "):
        st["mpc"] = M_CSTART if "migration_completion" in names else M_TOP
    elif label.startswith("vm_stop"):
        st["mpc"] = M_VMSTOPPED
    elif label.startswith("ram_save_complete:"):
        st["mpc"] = M_CDONE
    elif label.startswith("wait for BQL"):
        st["mpc"] = M_CSTART if "migration_completion" in names else (M_INIT if "ram_save_setup" not in names
                                                                        and "migration_iteration_run" not in names
                                                                        and "migration_cancel" not in names
                                                                        else M_TOP)
    elif label.startswith("wait for bitmap_mutex") and "ram_save_complete" not in names:
        st["mpc"] = M_TOP
    elif "ram_save_iterate" in names or "ram_save_complete" in names:
        st.update(mpc=M_SEND, mk=MK_LAST if "ram_save_complete" in names else MK_EXACT)
        st.update(send_position(w, q, fr, label))
    else:
        raise ProjectionError(f"unknown migration thread position: {label!r} in {names}")


def helper_pc(w, q, name, st, hooks=()) -> None:
    """Fill the timer's or the watcher's position into ``st``."""
    actor = w.actors.get(name)
    key, none, idle = ("tpc", T_NONE, T_SLEEP) if name == "timer" else ("wpc", W_NONE, W_LOOP)
    if actor is None or actor.done:
        st[key] = none
        return
    if inspect.getgeneratorstate(actor.gen) == inspect.GEN_CREATED:
        st[key] = idle
        return
    fr, label = frames(actor), actor.label
    names = [n for n, _ in fr]
    insync, post = (T_SYNC, T_POST) if name == "timer" else (W_SYNC, W_POST)
    if "migration_bitmap_sync" in names:
        if label.startswith(SYNC_DONE):
            st[key] = post
        else:
            st[key] = insync
            st.update(syo=O_TIMER if name == "timer" else O_WATCHER, sy=sync_position(w, q, fr, label, hooks))
    elif name == "watcher" and (label.startswith("watcher: sync_mode") or label.startswith("wait for BQL")):
        st[key] = W_FLIPPED
    else:
        st[key] = idle


def project(w, q: int, hooks=()) -> dict:
    """The abstract state of page ``q`` in world ``w`` (``hooks``: see :func:`sync_position`)."""
    kvm, mig, d = w.kvm, w.mig, w.design
    rb = w.block_of(q)
    rel = q - rb.offset
    st = dict(manual=kvm.manual_protect, iset=kvm.mode == "initially_set", fast=rb.fast_path,
              stale=bool(w.src_version[q] != w.last_read[q]), deq=bool(w.dest_version[q] == w.src_version[q]),
              L1=kvm.L1.test(q), L1c=kvm.L1c.test(q), uns=bool(kvm.unsynced[_slot_index(w, q)]),
              WP=kvm.protected.test(q), L2=w.L2.test(q), bmap=rb.bmap.test(rel),
              cb=rb.clear_bmap.test(rb.chunk_of(rel)),
              carry=mig is not None and q in mig.sync_carry,
              su=mig is not None and mig.sending_unread == q,
              sr=mig is not None and mig.sending_read is not None and mig.sending_read[0] == q,
              iter=("iter_bmap" in rb.extra_bitmaps and rb.iter_bmap.test(rel)),
              shadow=("shadow_bmap" in rb.extra_bitmaps and rb.shadow_bmap.test(rel)),
              bss=bool(getattr(rb, "background_sync_shown_up", False)),
              modern=getattr(d, "sync_mode", "LEGACY") == "MODERN",
              log=kvm.logging, ready=mig is not None and mig.bitmaps_ready, vm=w.vm_running,
              creq=mig is not None and mig.cancel_requested, wquit=bool(getattr(d, "watcher_quit", False)),
              err=False, pq=False, pc=False, cpend=False,
              mpc=M_NONE, mk=0, sy=Y_NONE, syo=0, syf=0, ss=0, tpc=T_NONE, wpc=W_NONE,
              phase=P_NONE if mig is None else PHASES[mig.phase],
              nsync=min(getattr(mig, "iteration_count", 0), 2) if mig is not None else 0)
    migration_pc(w, q, w.actors.get("migration"), st, hooks)
    helper_pc(w, q, "timer", st, hooks)
    helper_pc(w, q, "watcher", st, hooks)
    if st["sy"] in (Y_BLK, Y_BLK2, Y_CT, Y_CC, Y_QDONE, Y_CBD, Y_FOLD):
        fl = getattr(d, "flavour", "LEGACY_ITER")
        st["syf"] = {"LEGACY_ITER": F_LEGACY, "MODERN_ITER": F_MITER, "MODERN_BACKGROUND": F_MBG}[fl]
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
