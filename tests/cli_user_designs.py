"""User-style designs for the command-line tests: plain subclasses, named by file path
(``tests/cli_user_designs.py:Class``) as a user would. Not a test module."""
from dirtyproof.impl.designs import Legacy
from dirtyproof.mutants import MUTANTS
from dirtyproof.proofs.encoding import BaseEncoding


class Reorder(Legacy):
    """A correct override (it calls its parent), with no name and no per-page encoding."""

    def ram_save_iterate(self, w):
        return (yield from super().ram_save_iterate(w))


class Crashy(Legacy):
    """Its send crashes; it inherits ``name`` ("legacy") and must not be called that."""

    def ram_save_iterate(self, w):
        yield "about to crash"
        raise ZeroDivisionError("boom")


class AttachCrash(Legacy):
    """Its attach() raises."""

    name = "attach-crash"

    def attach(self, w):
        raise RuntimeError("attach fails")


class NonString(Legacy):
    """A step that yields an int."""

    def ram_save_iterate(self, w):
        yield 42
        return (yield from super().ram_save_iterate(w))


class Hang(Legacy):
    """A step that never yields."""

    def ram_save_iterate(self, w):
        while True:
            pass
        yield "never"


class Livelock(Legacy):
    """A send that yields forever: the migration never completes."""

    def ram_find_and_save_block(self, w):
        while True:
            yield "spinning"


class WornEncoding(MUTANTS["read-before-clear"]):
    """The corpus mutant read-before-clear wearing its parent's encoding."""

    per_page_encoding = BaseEncoding


class AVeryLongUserDesignNameThatGoesOnAndOn(Reorder):
    """A long name, for the table's alignment."""


class HangEncoded(Hang):
    """A step that never yields, in a design that brings an encoding: ``check --jobs`` runs it
    first in a process-pool worker (the encoding's conformance gate), where the step limit must
    hold too."""

    per_page_encoding = BaseEncoding
