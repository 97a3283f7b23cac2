"""Processes and ports for the demo's private Postfix and the tests: commands run with
a bounded wait (on a pseudo-terminal when their errors go to a terminal only), the
descendants of a process from /proc, signals to given PIDs only, free loopback ports,
a scratch directory on tmpfs.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

COMMAND_TIMEOUT: Final = 60.0


class CommandError(Exception):
    """A command did not finish within its time; the message shows its output."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(
    host: str, port: int, timeout: float, alive: Callable[[], bool] = lambda: True
) -> bool:
    """True once something accepts on (host, port); False on timeout or when not alive()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | None = None,
    timeout: float = COMMAND_TIMEOUT,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a program with a bounded wait; its process group is killed on timeout."""
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        raise CommandError(
            f"{cmd[0]} did not finish within {timeout}s: {' '.join(map(str, cmd))}\n"
            f"stdout: {out[-2000:]!r}\nstderr: {err[-2000:]!r}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_tty(
    cmd: Sequence[str | os.PathLike[str]],
    timeout: float = COMMAND_TIMEOUT,
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; return (exit, all output).

    Postfix commands print their fatal errors to stderr only when it is a
    terminal. The process group is killed (and PostfixError raised) when it
    takes longer than ``timeout`` seconds.
    """
    master_fd, slave_fd = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdin=subprocess.DEVNULL,
            stdout=slave_fd,
            stderr=slave_fd,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(slave_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                raise CommandError(
                    f"{' '.join(map(str, cmd))} did not finish within {timeout}s: "
                    + b"".join(chunks).decode("utf-8", "replace")
                )
            r, _, _ = select.select([master_fd], [], [], min(left, 0.2))
            if r:
                try:
                    data = os.read(master_fd, 65536)
                except OSError:  # EIO: every writer has gone
                    data = b""
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master_fd)
    rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return rc, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict ({} when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def pid_alive(pid: int) -> bool:
    st = proc_status(pid).get("State", "")
    return bool(st) and not st.startswith("Z")


def kill_pids(pids: Sequence[int], grace: float = 5.0) -> None:
    """SIGTERM these PIDs, wait (bounded), SIGKILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.05)
        if not any(pid_alive(p) for p in pids):
            return


def tmpfs_dir(prefix: str) -> Path:
    """A fresh 0755 directory, on tmpfs (/dev/shm) when there is one, else /run or $TMPDIR."""
    for cand in ("/dev/shm", "/run"):
        if os.path.isdir(cand) and os.access(cand, os.W_OK):
            d = Path(tempfile.mkdtemp(prefix=prefix, dir=cand))
            break
    else:
        d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


__all__ = [
    "COMMAND_TIMEOUT",
    "CommandError",
    "descendants",
    "free_port",
    "kill_pids",
    "pid_alive",
    "proc_status",
    "run",
    "run_tty",
    "tmpfs_dir",
    "wait_port",
]
