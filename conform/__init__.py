"""Conformance of real QEMU migrations: run them, check them against the spec and the model.

``guest`` builds the dirtying guest, ``qmp`` speaks QMP, ``runner`` drives a migration between two
QEMU processes and records it, ``trace`` parses the record, ``rules`` and ``periods`` check it, and
``cli`` is the ``dirtyproof conform`` verb.
"""
