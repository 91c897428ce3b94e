"""QEMU before 9.2: the base design as it is."""
from .base import Design


class Legacy(Design):
    """Syncs only at setup, at the exact-pending check and at completion."""

    name = "legacy"
    summary = "QEMU before 9.2: syncs only at setup, at the exact-pending check and at completion"
