"""dirtyproof.impl: the executable reference model of QEMU's pre-copy dirty-page bookkeeping."""
from .bitmap import Bitmap
from .config import KVM_MODES, Config
from .geometry import BlockSpec, Geometry
from .world import BadChoice, ModelError, World

__all__ = ["Bitmap", "BlockSpec", "Config", "Geometry", "KVM_MODES", "World", "BadChoice", "ModelError"]
