"""dirtyproof.explore: exhaustive breadth-first exploration of small worlds, for any design."""
from .bounds import Bounds, default_config, default_geometry
from .engine import Explorer, Result, explore
from .fingerprint import fingerprint
from .reductions import Reductions

__all__ = ["Bounds", "Explorer", "Reductions", "Result", "default_config", "default_geometry", "explore",
           "fingerprint"]
