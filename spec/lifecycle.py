"""The lifecycle's properties and warning: memory safety, thread lifetime, and idle helper threads.

They read what the world records (impl/freed.py, impl/world.py): the ``freed_access`` events of a
step, and each thread actor's attempt and whether it ever took a lock. Design code writes none of
it.
"""
from __future__ import annotations

from .invariants import Violation

# the phases before an attempt's iterations begin (QEMU's SETUP and WAIT_UNPLUG states)
_BEFORE_ACTIVE = ("setup", "wait_unplug")


def check_memory_safety(w) -> Violation | None:
    """No thread reads or writes migration state that ``ram_save_cleanup`` freed (RAMState with
    its ``bitmap_mutex``, every block's ``bmap`` and ``clear_bmap``, the design's bitmaps)."""
    for ev in w.events:
        if ev[0] == "freed_access":
            return Violation("memory-safety", f"{ev[1]} touches {ev[2]} after ram_save_cleanup freed it")
    return None


def check_thread_lifetime(w) -> Violation | None:
    """No thread of a migration attempt outlives the attempt: once the attempt's migration thread
    has finished its cleanup (the actor exited), every thread it or its design started is over."""
    mig = w.actors.get("migration")
    if mig is None:
        return None
    for a in w.actors.values():
        if a is mig or a.done or a.attempt == 0:
            continue
        if a.attempt < mig.attempt or (a.attempt == mig.attempt and mig.done):
            return Violation("thread-lifetime", f"thread {a.name} of attempt {a.attempt} still runs after "
                             f"attempt {a.attempt}'s cleanup ended")
    return None


def check_helper_idle(w) -> Violation | None:
    """A helper thread of an attempt exits before the attempt's iterations began (the state still
    SETUP or WAIT_UNPLUG), without having done anything (it never took a lock): for the rest of
    the attempt it cannot do its job."""
    mig_actor = w.actors.get("migration")
    mig = w.mig
    if mig_actor is None or mig_actor.done or mig is None or mig.cancel_requested or mig.phase not in _BEFORE_ACTIVE:
        return None
    for ev in w.events:
        if ev[0] != "exit":
            continue
        a = w.actors.get(ev[1])
        if a is None or a is mig_actor or a.locked or a.attempt != mig_actor.attempt:
            continue
        return Violation("helper-idle", f"thread {a.name} exits in phase {mig.phase} without having "
                             f"done any work: it cannot do its job in this attempt")
    return None
