"""Where a thread is: the design-interface methods it is inside, with their arguments.

When a world attaches a design it wraps each step method the design interface declares (QEMU's
function names: ``migration_bitmap_sync``, ``sync_one_page``, ``ram_save_page``...) and the extra
ones a design declares in ``regions``. While a thread runs inside such a method, a
:class:`Region` (the method's name and its arguments after the world) is on the thread's
``regions`` stack. Consumers (the prover's projection) read that stack and the last step's record
instead of a generator's frames, so renaming a local variable or rewording a label changes
nothing they see.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from inspect import CO_GENERATOR
from types import FunctionType

# The step methods of the design interface (impl/designs/base.py) whose extent is a region.
REGION_METHODS = (
    "migration_thread", "ram_save_setup", "ram_init_bitmaps", "migration_bitmap_sync_precopy",
    "migration_bitmap_sync", "memory_global_dirty_log_sync", "kvm_physical_sync_dirty_bitmap",
    "ramblock_sync_dirty_bitmap", "cpu_physical_memory_sync_dirty_bitmap", "sync_one_page",
    "migration_iteration_run", "ram_state_pending_exact", "ram_save_iterate", "ram_save_burst",
    "ram_find_and_save_block", "migration_bitmap_clear_dirty", "migration_clear_memory_region_dirty_bitmap",
    "memory_region_clear_dirty_bitmap", "kvm_log_clear_one_slot", "ram_save_page", "migration_completion",
    "migration_iteration_finish", "ram_save_complete", "migration_cancel", "qemu_savevm_wait_unplug",
    "migrate_fd_cleanup", "join_threads",
    # dirty ring mode (impl/designs/base.py): the rule kick-before-reap reads the log sync's region
    "kvm_log_sync_global", "kvm_dirty_ring_flush", "kvm_dirty_ring_reap", "kvm_dirty_ring_reap_one",
    "kvm_dirty_ring_reaper_thread",
)


@dataclass(frozen=True)
class Region:
    """A design method a thread is inside: its name, its positional arguments (after the world)
    and its keyword arguments as ``(name, value)`` pairs."""

    name: str
    args: tuple
    kwargs: tuple = ()

    def arg(self, name: str, position: int, default=None):
        """The argument ``name``, given by keyword or at ``position`` (after the world), else
        ``default``."""
        for k, v in self.kwargs:
            if k == name:
                return v
        return self.args[position] if position < len(self.args) else default


def install(w, design) -> None:
    """Wrap ``design``'s region methods (the interface's and ``design.regions``) for world ``w``."""
    for name, step in _plan(type(design)):
        method = getattr(design, name, None)
        if method is None or not callable(method):
            continue
        setattr(design, name, _wrapped(w, name, method, step))


# Per design class, with the ``regions`` tuple it was worked out from: ``(name, whether the
# shipped base defines it as a step generator)`` for every method to wrap. Worked out once, not
# for every world (the explorer makes one per replay: a fifth of making a world); a class whose
# ``regions`` change gets a new plan.
_PLANS: dict[type, tuple] = {}


def _plan(cls) -> tuple:
    extra = tuple(getattr(cls, "regions", ()))
    hit = _PLANS.get(cls)
    if hit is not None and hit[0] == extra:
        return hit[1]
    plan = tuple((name, _shipped_step(cls, name)) for name in REGION_METHODS + extra)
    _PLANS[cls] = (extra, plan)
    return plan


def _shipped_step(cls, name: str) -> bool:
    """Whether the shipped design ``cls`` derives from defines ``name`` as a step generator (a
    method that yields its atomic steps): an override of it must return one too."""
    for k in cls.__mro__:
        if k.__module__.startswith("dirtyproof.impl.designs") and name in vars(k):
            f = vars(k)[name]
            if type(f) is FunctionType:
                # what inspect.isgeneratorfunction answers for a plain function, without its
                # unwrapping (it ran for every region method of every world the explorer
                # replays: a third of making a world)
                return bool(f.__code__.co_flags & CO_GENERATOR)
            return inspect.isgeneratorfunction(f)
    return False


def _where(method) -> str:
    """``file:line`` of a method's definition, for a message to its author."""
    code = getattr(getattr(method, "__func__", method), "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else "?"


def _wrapped(w, name: str, method, step: bool = False):
    def entered(*args, **kw):
        out = method(*args, **kw)
        if not inspect.isgenerator(out):
            if step:
                # the base's method yields its steps; an override that returns a value instead
                # would fail later with "'bool' object is not iterable" in the base's code
                raise TypeError(f"{name} (defined at {_where(method)}) returned {type(out).__name__}, not a "
                                f"generator of steps: an override of a step method must yield (use "
                                f"'yield from' for the base's steps, 'return' for its value)")
            return out
        rest = args[1:] if args and args[0] is w else args
        return _inside(w, Region(name, tuple(rest), tuple(kw.items())), out)
    entered.__doc__ = method.__doc__
    entered.__wrapped__ = method
    return entered


def _inside(w, region: Region, gen):
    """Run step generator ``gen`` with ``region`` on the running thread's stack."""
    actor = w.current
    stack = actor.regions if actor is not None else None
    if stack is not None:
        stack.append(region)
    try:
        return (yield from gen)
    finally:
        if stack and stack[-1] is region:
            stack.pop()


def names(actor) -> list[str]:
    """The region names of ``actor``, outermost first."""
    return [r.name for r in actor.regions]


def innermost(actor, *wanted: str) -> Region | None:
    """The innermost of ``actor``'s regions named one of ``wanted``, or ``None``."""
    for r in reversed(actor.regions):
        if r.name in wanted:
            return r
    return None
