"""Mutants for multifd sending (``Config.multifd_channels`` > 0): broken only with multifd on.

Their expectations are the manifest's ``multifd`` section, hunted with the flag on."""
from __future__ import annotations

from dirtyproof.impl.designs.base import Design, Step
from dirtyproof.impl.multifd import multifd_send_pages
from dirtyproof.impl.steps import MULTIFD_SYNC
from dirtyproof.impl.steps import Step as S


class MultifdNoRoundFlush(Design):
    """The per-round flush only hands out the partial batch and does not wait for the channels
    to drain (no ``multifd_send_sync_main`` barrier when ``find_dirty_block`` wraps): a page
    taken again in the next round can go out on another channel while its previous copy is still
    unread or undelivered on the first, and the older copy can land last. Realistic: QEMU before
    8.1 flushed only per section, and ``migrate_multifd_flush_after_each_section`` off with the
    wrap's flush forgotten is exactly this (migration/ram.c ``find_dirty_block``)."""

    name = "multifd-no-round-flush"
    summary = "mutant: multifd's per-round flush does not wait for the channels to drain"

    def multifd_send_sync_main(self, w, why: str) -> Step:
        """As the base at completion; at a round's end only the batch is handed out."""
        if why != "round":
            yield from super().multifd_send_sync_main(w, why)
            return
        yield from multifd_send_pages(w)
        yield S(MULTIFD_SYNC, value=why, note="(not waiting for the channels)")
