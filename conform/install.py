"""Find or install the QEMU versions the real-QEMU checks run: 7.2 from Debian bookworm (the
system's ``qemu-system-x86_64``) and 10.0 from bookworm-backports, extracted side by side.

The backports .debs are fetched with an apt configuration of its own (its own sources list, lists
and cache in a temporary folder), so the system's apt sources are left as they were, and unpacked
with ``dpkg-deb -x`` into a cache folder. Every failure is a ``Unavailable`` with one line: the
callers skip.

``python -m dirtyproof.conform.install 7.2|10.0`` prints the binary's path (exit 0), or the reason
on stderr (exit 3).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEBIAN = os.environ.get("DIRTYPROOF_DEBIAN_MIRROR", "http://deb.debian.org/debian")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
BACKPORTS_PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data")
SYSTEM_PACKAGES = ("qemu-system-x86", "qemu-utils", "binutils")


class Unavailable(Exception):
    """This QEMU cannot be had here (no apt, no network to the archive, not root...)."""


def cache_root() -> Path:
    """Where extracted QEMUs live: ``$DIRTYPROOF_QEMU_CACHE`` or ``~/.cache/dirtyproof``."""
    return Path(os.environ.get("DIRTYPROOF_QEMU_CACHE") or Path.home() / ".cache" / "dirtyproof")


def qemu_version(binary: str) -> str | None:
    """``X.Y.Z`` of a QEMU binary, or None when it does not run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.split()
    return words[3] if len(words) > 3 and words[:3] == ["QEMU", "emulator", "version"] else None


def _run(cmd, timeout, what):
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except FileNotFoundError:
        raise Unavailable(f"{what}: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{what}: no answer within {timeout} s") from None
    if done.returncode:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["failed"]
        raise Unavailable(f"{what}: {tail[0]}")
    return done.stdout


def ensure_system_qemu(install: bool = True) -> str:
    """The system's QEMU 7.2 (``apt-get install`` it when missing and allowed)."""
    have = shutil.which("qemu-system-x86_64")
    if have is None or shutil.which("as") is None:
        if not install:
            raise Unavailable("qemu-system-x86_64 or binutils not installed")
        if os.geteuid() != 0:
            raise Unavailable("QEMU is not installed and installing it needs root")
        _run(["apt-get", "update", "-q"], 120, "apt-get update")
        _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *SYSTEM_PACKAGES], 300, "apt-get install")
        have = shutil.which("qemu-system-x86_64")
    v = qemu_version(have or "qemu-system-x86_64")
    if v is None or not v.startswith("7.2"):
        raise Unavailable(f"the system QEMU is {v or 'not runnable'}, not 7.2")
    return have


def ensure_backports_qemu(install: bool = True) -> Path:
    """A QEMU from bookworm-backports extracted under the cache; returns the root folder
    (binary at ``usr/bin/qemu-system-x86_64``)."""
    for old in sorted(cache_root().glob("qemu-backports-*"), reverse=True):
        if qemu_version(str(old / "usr/bin/qemu-system-x86_64")):
            return old
    if not install:
        raise Unavailable("no QEMU from bookworm-backports in the cache")
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise Unavailable("apt-get/dpkg-deb not found (not a Debian system)")
    with tempfile.TemporaryDirectory(prefix="dirtyproof-apt-") as tmp:
        t = Path(tmp)
        (t / "lists" / "partial").mkdir(parents=True)
        (t / "cache" / "archives" / "partial").mkdir(parents=True)
        src = t / "sources.list"
        src.write_text(f"deb [signed-by={KEYRING}] {DEBIAN} bookworm-backports main\n")
        opts = ["-o", f"Dir::Etc::SourceList={src}", "-o", f"Dir::Etc::SourceParts={t / 'none'}",
                "-o", f"Dir::State::Lists={t / 'lists'}", "-o", f"Dir::Cache={t / 'cache'}",
                "-o", "APT::Sandbox::User=root"]
        _run(["apt-get", *opts, "update", "-q"], 120, "apt-get update (bookworm-backports)")
        if not any(f.name.endswith("_Packages") or "_Packages." in f.name for f in (t / "lists").iterdir()):
            # apt-get update exits 0 when a source cannot be fetched; no package list means no archive
            raise Unavailable(f"bookworm-backports not reachable at {DEBIAN}")
        debs = t / "debs"
        debs.mkdir()
        try:
            done = subprocess.run(["apt-get", *opts, "download", "-q", *(f"{pkg}/bookworm-backports" for pkg in BACKPORTS_PACKAGES)], cwd=debs,
                                  capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise Unavailable("apt-get download: no answer within 300 s") from None
        if done.returncode:
            raise Unavailable(f"apt-get download: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
        stage = t / "root"
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(stage)], 120, f"dpkg-deb -x {deb.name}")
        v = qemu_version(str(stage / "usr/bin/qemu-system-x86_64"))
        if v is None:
            raise Unavailable("the backports QEMU does not run here (a library missing?)")
        dest = cache_root() / f"qemu-backports-{v}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(stage), dest)
    return dest


def data_dirs(root: Path) -> tuple[str, ...]:
    """``-L`` folders for an extracted QEMU: its own data, then the system's (firmware links)."""
    return (str(root / "usr/share/qemu"), "/usr/share/qemu", "/usr/share/seabios")


def main(argv=None) -> int:
    """Print the path of the wanted QEMU (installing it if needed), or why not (exit 3)."""
    argv = sys.argv[1:] if argv is None else argv
    want = argv[0] if argv else "7.2"
    try:
        if want == "7.2":
            print(ensure_system_qemu())
        elif want in ("10.0", "backports"):
            print(ensure_backports_qemu() / "usr/bin/qemu-system-x86_64")
        else:
            sys.stderr.write(f"unknown QEMU {want!r} (7.2 or 10.0)\n")
            return 2
    except Unavailable as exc:
        sys.stderr.write(f"QEMU {want} unavailable: {exc}\n")
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
