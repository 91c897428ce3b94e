"""A small synchronous QMP client over a unix socket (standard library only).

QMP is line-delimited JSON; asynchronous events can arrive between a command and its reply, so
they are kept in ``events`` with the time they were read.
"""
from __future__ import annotations

import json
import socket
import time


class QMPError(Exception):
    """A QMP command failed, or the connection broke or timed out."""


class QMP:
    """One QMP connection: ``connect`` reads the greeting and negotiates capabilities."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""
        self.events: list[dict] = []
        self.greeting: dict | None = None

    def connect(self, wait: float = 10.0) -> None:
        """Connect, retrying while QEMU has not created the socket yet, then ``qmp_capabilities``."""
        deadline = time.monotonic() + wait
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"no QMP server at {self.path} after {wait:.0f} s") from None
                time.sleep(0.02)
        self.sock = s
        self.greeting = self._read()
        self.command("qmp_capabilities")

    def _read(self) -> dict:
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise QMPError(f"QMP {self.path}: no answer within {self.timeout:.0f} s") from None
            except OSError as exc:
                raise QMPError(f"QMP {self.path}: {exc}") from None
            if not chunk:
                raise QMPError(f"QMP {self.path}: connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name: str, **arguments):
        """Run one command and return its ``return`` value; events met on the way are kept."""
        if self.sock is None:
            raise QMPError("QMP not connected")
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as exc:
            raise QMPError(f"QMP {self.path}: {exc}") from None
        while True:
            reply = self._read()
            if "event" in reply:
                reply["_read_at"] = time.time()
                self.events.append(reply)
                continue
            if "error" in reply:
                raise QMPError(f"{name}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def close(self) -> None:
        """Close the socket (QEMU keeps running)."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
