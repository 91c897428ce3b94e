"""Build the dirtying guest (``guest.S``) with GNU as/ld into a multiboot kernel."""
from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

PAGE = 4096
LOAD_ADDR = 0x100000
# The hot set starts above the kernel and its stack and ends below the top of a 64 MiB guest,
# where the firmware keeps its tables.
HOT_START = 0x200000


class BuildError(Exception):
    """The guest could not be built (no binutils, or the assembler failed)."""


def build_guest(outdir: Path, hot_bytes: int, delay: int, passes_per_dot: int = 1000,
                start: int = HOT_START, check: bool = True) -> Path:
    """Assemble and link the guest for a hot set of ``hot_bytes`` at ``start``; returns the ELF.
    ``check`` off builds a guest that only writes (no self-check on the destination)."""
    if hot_bytes <= 0 or hot_bytes % PAGE:
        raise BuildError(f"hot-set size must be a positive multiple of {PAGE} bytes")
    for tool in ("as", "ld"):
        if shutil.which(tool) is None:
            raise BuildError(f"GNU {tool} not found (install binutils)")
    src = resources.files("dirtyproof.conform").joinpath("guest.S")
    obj, elf = outdir / "guest.o", outdir / "guest.elf"
    syms = {"START": start, "SIZE": hot_bytes, "DELAY": delay, "PASSES_PER_DOT": passes_per_dot,
            "CHECK": int(check)}
    defs = [a for k, v in syms.items() for a in ("--defsym", f"{k}={v}")]
    with resources.as_file(src) as path:
        steps = (["as", "--32", *defs, str(path), "-o", str(obj)],
                 ["ld", "-m", "elf_i386", f"-Ttext=0x{LOAD_ADDR:x}", "-o", str(elf), str(obj)])
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise BuildError(f"{cmd[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return elf
