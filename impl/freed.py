"""Freed migration state: RAMState and the RAMBlock bitmaps after ``ram_save_cleanup``.

QEMU frees them in ``qemu_savevm_state_cleanup`` -> ``ram_save_cleanup`` (migration/ram.c):
``g_free(block->bmap)``, ``g_free(block->clear_bmap)`` (both set to NULL), then
``ram_state_cleanup`` destroys ``bitmap_mutex``, frees the RAMState and sets ``ram_state = NULL``.
A thread that touches them afterwards reads freed memory (or dereferences NULL).

The model keeps the objects (the checks still read them, after the attempt, to judge it) but
*poisons* them: the world switches the object's class to a subclass whose every attribute access
made while design code runs a step is recorded as a ``("freed_access", thread, what)`` event of
that step, which the ``memory-safety`` property reads. Design code cannot tell: the data are the
same, only the world learns of the access. A later ``ram_list_init_bitmaps`` allocates new
bitmaps (the world does, before the design's method runs), and a new attempt gets a new RAMState.

Not every field of the model's ``MigrationState`` is RAMState: ``phase`` and ``cancel_requested``
(``MigrationState::state``), ``downtime_raised`` (a parameter), and the ``mig_stats`` counters
(``dirty_sync_count``, ``iteration_count``, the transfer counters) outlive an attempt in QEMU, so
reading them after the free is fine. :data:`RAMSTATE_FIELDS` lists those that are RAMState's.
"""
from __future__ import annotations

from .bitmap import Bitmap

# Fields of the model's MigrationState that live in QEMU's RAMState (freed by ram_state_cleanup).
RAMSTATE_FIELDS = frozenset((
    "migration_dirty_pages", "num_dirty_pages_period", "time_last_bitmap_sync", "bytes_xfer_prev",
    "dirty_rate_high_cnt", "last_sync_end_ms", "pss_block", "pss_page",
))


def _note(world, what: str) -> None:
    """Record an access to freed ``what`` if design code is running a step of ``world``."""
    if world is not None and world.design_running():
        world.note_freed_access(what)


class FreedBitmap(Bitmap):
    """A bitmap after ``g_free``: every use by a design step is recorded by the world."""

    __slots__ = ()

    def __getattribute__(self, name):
        if name != "freed":
            freed = object.__getattribute__(self, "freed")
            if freed is not None:
                _note(freed[0], freed[1])
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        freed = object.__getattribute__(self, "freed")
        if freed is not None:
            _note(freed[0], freed[1])
        object.__setattr__(self, name, value)


def free_bitmap(world, bm: Bitmap, what: str) -> None:
    """Poison ``bm`` (named ``what`` in reports): later design accesses are recorded by ``world``."""
    if type(bm) is Bitmap:
        object.__setattr__(bm, "freed", (world, what))
        bm.__class__ = FreedBitmap


def is_freed(obj) -> bool:
    """Whether ``obj`` (a bitmap or a MigrationState) was freed."""
    return isinstance(obj, FreedBitmap) or getattr(type(obj), "_is_freed_ram_state", False)


def freed_state_class(cls):
    """The poisoned subclass of the world's ``MigrationState`` class ``cls`` (made once per class)."""
    sub = _FREED_CLASSES.get(cls)
    if sub is None:
        def __getattribute__(self, name):
            if name in RAMSTATE_FIELDS:
                _note(object.__getattribute__(self, "_freed_by"), f"RAMState.{name}")
            return object.__getattribute__(self, name)

        def __setattr__(self, name, value):
            if name in RAMSTATE_FIELDS:
                _note(object.__getattribute__(self, "_freed_by"), f"RAMState.{name}")
            object.__setattr__(self, name, value)

        sub = type(f"Freed{cls.__name__}", (cls,), {
            "__getattribute__": __getattribute__, "__setattr__": __setattr__, "_is_freed_ram_state": True,
            "__doc__": "A MigrationState whose RAMState part was freed: design accesses to it are recorded."})
        _FREED_CLASSES[cls] = sub
    return sub


_FREED_CLASSES: dict = {}


def free_ram_state(world, mig) -> None:
    """Poison the RAMState fields of ``mig`` (``ram_state_cleanup``: ``g_free``, ``ram_state = NULL``)."""
    if mig is None or is_freed(mig):
        return
    object.__setattr__(mig, "_freed_by", world)
    mig.__class__ = freed_state_class(type(mig))
