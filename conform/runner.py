"""Drive one real migration between two QEMU processes on this host and record it.

The destination is started first (paused with ``-S`` so its memory can be dumped before the guest
runs there), then the source; both in their own process group, with every file in one temporary
directory. Whatever happens (completion, the time limit, a cancel, Ctrl-C, an exception), the
``finally`` clause quits both QEMUs, kills their process groups if they linger and removes the
directory: nothing is left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .guest import HOT_START, PAGE, build_guest
from .memory import compare_dumps, read_pattern
from .qmp import QMP, QMPError

# The trace events the checks read (names absent from a QEMU version are ignored by it).
TRACE_EVENTS = ("migration_bitmap_sync_start", "migration_bitmap_sync_end", "migration_throttle",
                "migrate_set_state", "migration_completion_vm_stop", "cpu_throttle_set",
                "cpu_throttle_dirty_sync",
                # for explaining a run, not read by the rules: the switchover threshold
                # (max_size = bandwidth x downtime limit) and the pending sizes it is compared with
                "migrate_transferred", "migrate_pending", "migrate_pending_exact",
                "migrate_pending_estimate", "migration_thread_low_pending")
SAMPLE_PERIOD_S = 0.1
FINAL_STATES = ("completed", "failed", "cancelled")


class RunError(Exception):
    """The migration could not be run (QEMU missing or failing to start, QMP broken)."""


@dataclass
class RunParams:
    """What to run: the QEMU binary, the guest's hot set and dirty rate, the migration settings."""

    qemu: str = "qemu-system-x86_64"
    data_dirs: tuple[str, ...] = ()        # -L folders (for a QEMU extracted from a .deb)
    mem_mib: int = 64
    hot_mib: int = 4
    delay: int = 0                         # spin iterations after each page write: lower rate
    bandwidth: int | None = None           # max-bandwidth, bytes/s (QEMU's default if None)
    downtime_ms: int | None = None         # downtime-limit (QEMU's default if None)
    auto_converge: bool = True
    throttle_initial: int | None = None    # cpu-throttle-initial (QEMU's default 20 if None)
    time_limit: float = 60.0               # seconds of migration before it is cancelled
    warmup: float = 0.3                    # seconds the guest runs before the migration starts
    guest_check: bool = True               # the guest checks each page before rewriting it
    qmp_wait: float = 10.0                 # seconds to wait for QEMU's QMP socket
    linger: float = 0.0                    # seconds to keep sampling after the migration ended
    alter_dump_page: int | None = None     # test hook: flip a byte of this page in the dst dump

    def check(self) -> None:
        """Reject parameters that cannot make a run (a ``ValueError`` with one line)."""
        if self.hot_mib <= 0 or HOT_START + self.hot_mib * 2**20 > (self.mem_mib - 2) * 2**20:
            raise ValueError(f"hot set must be 1..{self.mem_mib - 4} MiB for a {self.mem_mib} MiB guest")
        if self.delay < 0 or self.time_limit <= 0:
            raise ValueError("delay must be >= 0 and the time limit > 0")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError("bandwidth must be positive (bytes/s)")
        if self.downtime_ms is not None and self.downtime_ms <= 0:
            raise ValueError("downtime limit must be positive (ms)")


@dataclass
class RunRecord:
    """What a run left: the source's trace text, the samples, the end-to-end results."""

    params: dict
    header: dict = field(default_factory=dict)       # versions, parameters, guest layout
    samples: list[dict] = field(default_factory=list)
    trace_text: str = ""
    outcome: str = ""                                # the final status, or why it stopped
    memory: dict | None = None                       # compare_dumps(...).to_json()
    pattern: dict | None = None                      # read_pattern of the source dump
    guest: dict | None = None                        # the guest's self-check on the destination
    dst_trace_text: str = ""

    def samples_lines(self) -> list[str]:
        """The samples file: a header line, one line per sample, then the end-to-end results."""
        out = [json.dumps({"kind": "header", "params": self.params, **self.header})]
        out += [json.dumps({"kind": "sample", **s}) for s in self.samples]
        out.append(json.dumps({"kind": "result", "outcome": self.outcome, "memory": self.memory,
                               "pattern": self.pattern, "guest": self.guest}))
        return out


def _qemu_cmd(p: RunParams, d: Path, side: str, kernel: Path) -> list[str]:
    cmd = [p.qemu]
    for folder in p.data_dirs:
        cmd += ["-L", folder]
    cmd += ["-machine", "pc", "-accel", "tcg", "-m", str(p.mem_mib), "-nodefaults", "-display", "none",
            "-kernel", str(kernel), "-qmp", f"unix:{d / (side + '.qmp')},server=on,wait=off",
            "-chardev", f"file,id=con,path={d / (side + '.con')}",
            "-device", "isa-debugcon,iobase=0xe9,chardev=con",
            "-msg", "timestamp=on", "-trace", f"events={d / 'events'},file={d / (side + '.trace')}"]
    if side == "dst":
        cmd += ["-S", "-incoming", f"unix:{d / 'mig.sock'}"]
    return cmd


def _start(cmd: list[str], d: Path, side: str) -> subprocess.Popen:
    log = open(d / f"{side}.log", "wb")
    try:
        # A session of its own: the whole process group can be signalled, and a Ctrl-C at the
        # terminal reaches this process only, which then stops QEMU in order.
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as exc:
        raise RunError(f"cannot start {cmd[0]}: {exc.strerror}") from None
    finally:
        log.close()


def _stop(proc: subprocess.Popen | None, qmp: QMP | None) -> None:
    """Quit QEMU politely, then SIGTERM and SIGKILL its process group."""
    if proc is None:
        return
    asked = False
    if qmp is not None and qmp.sock is not None and proc.poll() is None:
        try:
            qmp.timeout = 2.0
            qmp.command("quit")
            asked = True
        except QMPError:
            pass
    if qmp is not None:
        qmp.close()
    for sig, wait in ((None, 3.0 if asked else 0.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        if sig is not None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # Reap anything else left in the group (QEMU forks no helpers here, but be sure).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _dump(qmp: QMP, path: Path, size: int) -> bytes:
    qmp.command("pmemsave", val=0, size=size, filename=str(path))
    data = path.read_bytes()
    path.unlink()
    return data


def run_migration(p: RunParams, on_sample=None) -> RunRecord:
    """Run one migration as ``p`` says and return its record; never leaves a process or a file."""
    p.check()
    if shutil.which(p.qemu) is None and not Path(p.qemu).is_file():
        raise RunError(f"no QEMU binary {p.qemu!r}")
    rec = RunRecord(params=asdict(p))
    d = Path(tempfile.mkdtemp(prefix="dirtyproof-conform-"))
    src = dst = None
    qs = qd = None
    try:
        hot = p.hot_mib * 2**20
        kernel = build_guest(d, hot, p.delay, passes_per_dot=max(1, (1 << 20) // ((hot // PAGE) * (1 + p.delay))),
                             check=p.guest_check)
        (d / "events").write_text("\n".join(TRACE_EVENTS) + "\n")
        dst = _start(_qemu_cmd(p, d, "dst", kernel), d, "dst")
        src = _start(_qemu_cmd(p, d, "src", kernel), d, "src")
        qd, qs = QMP(str(d / "dst.qmp")), QMP(str(d / "src.qmp"))
        for q, proc, side in ((qd, dst, "destination"), (qs, src, "source")):
            try:
                q.connect(wait=p.qmp_wait)
            except QMPError as exc:
                log = (d / ("dst.log" if q is qd else "src.log")).read_text(errors="replace").strip()
                raise RunError(f"{side} QEMU did not start: {log.splitlines()[-1] if log else exc}") from None
        ver = qs.command("query-version")
        rec.header["qemu_version"] = "{major}.{minor}.{micro}".format(**ver["qemu"])
        rec.header["qemu_package"] = ver.get("package", "").strip()
        rec.header["guest"] = {"hot_start": HOT_START, "hot_bytes": hot, "mem_bytes": p.mem_mib * 2**20}
        caps = [{"capability": "events", "state": True},
                {"capability": "auto-converge", "state": bool(p.auto_converge)}]
        qs.command("migrate-set-capabilities", capabilities=caps)
        params = {}
        if p.bandwidth is not None:
            params["max-bandwidth"] = p.bandwidth
        if p.downtime_ms is not None:
            params["downtime-limit"] = p.downtime_ms
        if p.throttle_initial is not None:
            params["cpu-throttle-initial"] = p.throttle_initial
        if params:
            qs.command("migrate-set-parameters", **params)
        rec.header["migrate_parameters"] = qs.command("query-migrate-parameters")
        rec.header["auto_converge"] = bool(p.auto_converge)
        time.sleep(p.warmup)
        rec.header["migrate_at"] = time.time()
        qs.command("migrate", uri=f"unix:{d / 'mig.sock'}")
        start = time.monotonic()
        next_t = start
        status = ""
        cancelled = False
        while True:
            t_send = time.time()
            try:
                info = qs.command("query-migrate")
            except QMPError as exc:
                # the source died mid-migration: a finding, not an error of the run
                rec.header["source_lost"] = _lost(src, exc)
                status = "source lost"
                break
            sample = {"t_send": t_send, "t_recv": time.time(), "query": info}
            rec.samples.append(sample)
            if on_sample:
                on_sample(sample)
            status = info.get("status", "")
            if status in FINAL_STATES:
                break
            if not cancelled and time.monotonic() - start > p.time_limit:
                qs.command("migrate_cancel")
                cancelled = True
                cancel_at = time.monotonic()
            if cancelled and time.monotonic() - cancel_at > 10:
                status = "stuck after cancel"
                break
            next_t += SAMPLE_PERIOD_S
            # wake for the next sample, or exactly at the time limit (a cancel at a chosen instant)
            wake = next_t if cancelled else min(next_t, start + p.time_limit + 1e-4)
            time.sleep(max(0.0, wake - time.monotonic()))
        rec.outcome = status + (" (time limit)" if cancelled else "")
        if status == "completed":
            # QEMU shows "completed" a moment before it fills in total-time and downtime
            time.sleep(0.2)
            t_send = time.time()
            rec.samples.append({"t_send": t_send, "query": qs.command("query-migrate"), "t_recv": time.time()})
            _check_end_to_end(p, rec, d, qs, qd)
        linger_end = time.monotonic() + p.linger
        while time.monotonic() < linger_end:
            # what the source does after the migration ended (a timer still firing, a crash)
            if src.poll() is not None:
                rec.header["source_exited_after_end"] = src.returncode
                break
            t_send = time.time()
            try:
                info = qs.command("query-migrate")
            except QMPError as exc:
                rec.header["source_lost_after_end"] = _lost(src, exc)
                break
            rec.samples.append({"t_send": t_send, "t_recv": time.time(), "query": info, "after_end": True})
            time.sleep(SAMPLE_PERIOD_S)
    finally:
        try:
            _stop(src, qs)
            _stop(dst, qd)
        finally:
            for side in ("src", "dst"):
                log = d / f"{side}.log"
                if log.exists():
                    rec.header[f"{side}_log_tail"] = log.read_text(errors="replace").splitlines()[-5:]
                f = d / f"{side}.trace"
                if f.exists():
                    text = f.read_text(errors="replace")
                    if side == "src":
                        rec.trace_text = text
                    else:
                        rec.dst_trace_text = text
            shutil.rmtree(d, ignore_errors=True)
    return rec


def _lost(src: subprocess.Popen, exc: Exception) -> dict:
    """How the source QEMU went away (its exit status once it has exited)."""
    try:
        src.wait(5)
    except subprocess.TimeoutExpired:
        pass
    return {"at": time.time(), "error": str(exc), "returncode": src.poll()}


def _check_end_to_end(p: RunParams, rec: RunRecord, d: Path, qs: QMP, qd: QMP) -> None:
    """Dump both sides (the destination is still paused), compare, then let the guest check itself."""
    size = p.mem_mib * 2**20
    qd.command("stop")                  # already paused by -S; a no-op that makes the order explicit
    dst_mem = _dump(qd, d / "dst.mem", size)
    src_mem = _dump(qs, d / "src.mem", size)
    if p.alter_dump_page is not None:
        page = p.alter_dump_page
        b = bytearray(dst_mem)
        b[page * PAGE] ^= 0xFF
        dst_mem = bytes(b)
    rec.memory = compare_dumps(src_mem, dst_mem).to_json()
    rec.pattern = read_pattern(src_mem, HOT_START, p.hot_mib * 2**20)
    del src_mem, dst_mem
    con = d / "dst.con"
    qd.command("cont")
    deadline = time.monotonic() + 10.0     # two dots: at least one whole checked pass
    text = ""
    while time.monotonic() < deadline:
        text = con.read_text(errors="replace") if con.exists() else ""
        if "X" in text or text.count(".") >= 2:
            break
        time.sleep(0.05)
    status = qd.command("query-status")
    rec.guest = {"console": text[:200], "dots": text.count("."), "lost": "X" in text, "checks": p.guest_check,
                 "running": status.get("running", False), "status": status.get("status")}


def save_record(rec: RunRecord, trace_path: Path, samples_path: Path) -> None:
    """Write a run's source trace and its samples file (what ``--qemu-trace``/``--samples`` read)."""
    Path(trace_path).write_text(rec.trace_text)
    Path(samples_path).write_text("\n".join(rec.samples_lines()) + "\n")
