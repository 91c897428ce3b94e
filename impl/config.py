"""Parameters of a world: geometry, KVM dirty-log mode, migration and throttle settings."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .geometry import Geometry

# The KVM modes every shipped engine loops over by default (check's gate, the explorer's default
# bound, the prover's configurations): adding one would make each of them a third slower.
KVM_MODES = ("legacy", "manual", "initially_set")
# KVM's dirty ring (KVM_CAP_DIRTY_LOG_RING, impl/kvm.py): accepted everywhere a mode is named and
# run where it is asked for (``--kvm-mode dirty_ring``, the manifest's ``dirty_ring`` section).
DIRTY_RING = "dirty_ring"
ALL_KVM_MODES = KVM_MODES + (DIRTY_RING,)
# QEMU's dirty-ring-size is 1024..65536 entries; the model's rings are far smaller so that a full
# ring (the vCPU's KVM_EXIT_DIRTY_RING_FULL) happens in small worlds. A power of two, as KVM wants.
MAX_DIRTY_RING_SIZE = 65536
# the per-vCPU hardware log before the ring (Intel PML: 512 entries); 0: writes reach the ring at once
MAX_DIRTY_RING_BUFFER = 512
TARGET_PAGE_SIZE = 4096
# The largest ram_addr space a world may have: the model keeps three int32 versions and several
# bitmaps per page (about 13 bytes), so 2^30 pages (a 4 TiB guest) already need some 14 GiB.
# A larger config is bad input, refused before numpy tries (and fails) to allocate it.
MAX_RAM_PAGES = 1 << 30
# QEMU's multifd-channels parameter is 1..255; the model's channels are threads of a search
MAX_MULTIFD_CHANNELS = 255


@dataclass(frozen=True)
class Config:
    """Everything that shapes a world besides the design.

    ``kvm_mode``: ``legacy`` (GET clears and re-protects), ``manual`` (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2:
    GET only copies, CLEAR re-protects) or ``initially_set`` (manual, and logging starts with every
    bit set and no page protected). Times are milliseconds of the logical clock.

    ``multifd_channels`` (0 by default: ``ram_save_page`` reads and delivers in order): that many
    multifd channels (``impl/multifd.py``): the migration thread queues a page after taking its
    bit, a channel reads and delivers it later, the channels are flushed once per round.

    ``kvm_mode="dirty_ring"`` (KVM_CAP_DIRTY_LOG_RING, ``impl/kvm.py``): a vCPU's first write to a
    write-protected page pushes the page to that vCPU's ring of ``dirty_ring_size`` entries
    (through a per-vCPU buffer of ``dirty_ring_buffer`` entries that reaches the ring at a VM
    exit; 0: no buffer); QEMU reaps the rings into its slot bitmaps and KVM_RESET_DIRTY_RINGS
    re-protects the pages. ``dirty_ring_with_bitmap``: KVM's backup bitmap for writes without a
    running vCPU, collected by the last stage's sync (QEMU ``b20cc776922d``). The three fields
    mean nothing in the other modes (no ring, no backup bitmap) and are ignored there, so that an
    engine may put one world in every mode in turn.

    ``free_page_hinting`` (off by default): the guest runs virtio-balloon's free page hinting
    (``impl/balloon.py``): it reports pages free, QEMU's iothread clears them from ``bmap``, and
    the precopy notifiers stop and restart the hinting around every sync that calls them.
    """

    geometry: Geometry = field(default_factory=Geometry.simple)
    kvm_mode: str = "manual"
    vcpus: int = 2
    burst: int = 8                       # pages sent per ram_save_iterate call
    switchover_pages: int = 4            # complete when migration_dirty_pages is at most this
    auto_converge: bool = True
    throttle_trigger_threshold: int = 50
    cpu_throttle_initial: int = 20
    cpu_throttle_increment: int = 10
    cpu_throttle_tailslow: bool = False
    max_cpu_throttle: int = 99
    dirty_sync_timer_ms: int = 5000      # periodic design's main-loop timer
    watcher_poll_ms: int = 1000          # background-v1 watcher thread
    watcher_idle_ms: int = 5000          # background-v1: sync only if the last one is older
    iterate_sync_ms: int = 3000          # iterate-sync design: period of its syncs
    # a virtio-net failover primary's unplug pending at setup: the migration waits this long in
    # WAIT_UNPLUG before it becomes ACTIVE (qemu_savevm_wait_unplug); 0: no failover device
    failover_unplug_ms: int = 0
    free_page_hinting: bool = False      # a virtio-balloon guest that hints free pages (impl/balloon.py)
    multifd_channels: int = 0            # multifd send channels (impl/multifd.py); 0: one in-order stream
    # dirty ring mode only (kvm_mode="dirty_ring", impl/kvm.py): entries per vCPU ring, the
    # per-vCPU buffer before the ring, and KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP (the backup bitmap)
    dirty_ring_size: int = 4
    dirty_ring_buffer: int = 2
    dirty_ring_with_bitmap: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, Geometry):
            raise ValueError("geometry must be a Geometry")
        if self.geometry.ram_pages > MAX_RAM_PAGES:
            raise ValueError(f"the geometry spans {self.geometry.ram_pages} pages; the model handles at most "
                             f"{MAX_RAM_PAGES} (2^30, about 13 bytes of model state per page)")
        if self.kvm_mode not in ALL_KVM_MODES:
            raise ValueError(f"unknown KVM mode {self.kvm_mode!r} (choose from {', '.join(ALL_KVM_MODES)})")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int",) and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"{f.name} must be a non-negative integer, not {v!r}")
        if not isinstance(self.free_page_hinting, bool):
            raise ValueError(f"free_page_hinting must be true or false, not {self.free_page_hinting!r}")
        if self.multifd_channels > MAX_MULTIFD_CHANNELS:
            raise ValueError(f"multifd_channels must be within 0..{MAX_MULTIFD_CHANNELS}, "
                             f"not {self.multifd_channels}")
        if not isinstance(self.dirty_ring_with_bitmap, bool):
            raise ValueError(f"dirty_ring_with_bitmap must be true or false, not {self.dirty_ring_with_bitmap!r}")
        n = self.dirty_ring_size
        if not 1 <= n <= MAX_DIRTY_RING_SIZE or n & (n - 1):
            raise ValueError(f"dirty_ring_size must be a power of two within 1..{MAX_DIRTY_RING_SIZE}, not {n}")
        if self.dirty_ring_buffer > MAX_DIRTY_RING_BUFFER:
            raise ValueError(f"dirty_ring_buffer must be within 0..{MAX_DIRTY_RING_BUFFER}, "
                             f"not {self.dirty_ring_buffer}")
        if self.vcpus < 1:
            raise ValueError("a guest needs at least one vCPU")
        if self.burst < 1:
            raise ValueError("burst must be at least 1 page")
        if not 1 <= self.max_cpu_throttle <= 99:
            raise ValueError("max_cpu_throttle must be within 1..99")

    @property
    def manual_protect(self) -> bool:
        """Whether KVM runs with manual dirty-log protect (CLEAR re-protects). QEMU enables it
        only without the dirty ring (kvm_init: the ring needs every page protected at start)."""
        return self.kvm_mode not in ("legacy", DIRTY_RING)

    def to_json(self) -> dict:
        """A JSON-able form, recorded in traces."""
        d = asdict(self)
        d["geometry"] = self.geometry.to_json()
        return d

    @classmethod
    def from_json(cls, data: dict) -> "Config":
        """Inverse of :meth:`to_json`; ``ValueError`` on unknown keys or bad values."""
        if not isinstance(data, dict):
            raise ValueError("config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        kw = dict(data)
        if "geometry" in kw:
            kw["geometry"] = Geometry.from_json(kw["geometry"])
        return cls(**kw)
