"""The milter's parent process: bind, fork workers, supervise, reload.

The parent keeps root only to bind the socket and to read the config and the
keys (again on reload); workers drop to UserID at once (the nginx/Postfix
model). Signals:

- SIGUSR1 (what Debian's opendkim unit sends) and SIGHUP: re-read the config,
  tables and keys; start new workers with them and let the old ones finish the
  connections they have. A config that does not load keeps the old workers
  serving, and the log says why. (OpenDKIM stops on SIGHUP; mailseal reloads.)
- SIGTERM / SIGINT: stop accepting, let workers finish in-flight messages, exit.

A worker that dies is restarted when AutoRestart is on, at most
AutoRestartRate times per period; otherwise the whole milter stops, as
OpenDKIM does without AutoRestart.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import pwd
import select
import signal
import socket
import stat
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from mailseal.config.opendkim import MilterConfig, load_config
from mailseal.errors import ConfigError, MailsealError
from mailseal.milter.board import LoadBoard
from mailseal.milter.sockets import SocketFamily, parse_socket_spec

log = logging.getLogger("mailseal.milter")

#: Options that only take effect on restart (as in OpenDKIM).
RESTART_ONLY: Final = ("socket", "user_id", "umask", "pid_file", "background")
STOP_WAIT: Final = 30.0


class ServerError(MailsealError):
    """The milter could not start: a socket that cannot be bound, an unknown user."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who workers run as."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str


def resolve_user(spec: str | None) -> Identity | None:
    """``user[:group]`` to ids; None when no change is asked or we are not root."""
    if not spec or os.geteuid() != 0:
        return None
    user, _, group = spec.partition(":")
    try:
        pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        raise ServerError(f"UserID: no such user {user!r}") from None
    gid = pw.pw_gid
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
        except KeyError:
            raise ServerError(f"UserID: no such group {group!r}") from None
    groups = tuple(g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem)
    return Identity(pw.pw_uid, gid, tuple(sorted({gid, *groups})), pw.pw_name)


def drop_privileges(who: Identity | None) -> None:
    if who is None:
        return
    os.setgroups(list(who.groups))
    os.setgid(who.gid)
    os.setuid(who.uid)


def parse_socket(spec: str) -> tuple[int, str | tuple[str, int]]:
    """A milter socket spec to (address family, address), as opendkim(8) reads it.

    ``inet:PORT[@HOST]``, ``inet6:PORT[@HOST]``, ``local:/path``, ``unix:/path``,
    or a bare path. ``inet:PORT`` alone listens on every interface.
    """
    try:
        parsed = parse_socket_spec(spec)
    except ValueError as exc:
        raise ServerError(str(exc)) from None
    if parsed.family is SocketFamily.UNIX:
        assert isinstance(parsed.address, str)
        if not parsed.address.startswith("/"):
            raise ServerError(f"socket {spec!r}: a local socket needs an absolute path")
        return socket.AF_UNIX, parsed.address
    assert not isinstance(parsed.address, str)
    host, port = parsed.address
    family = socket.AF_INET6 if parsed.family is SocketFamily.INET6 else socket.AF_INET
    if not host:
        return family, ("::" if family == socket.AF_INET6 else "0.0.0.0", port)
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServerError(f"socket {spec!r}: cannot resolve {host!r}: {exc.strerror}") from None
    return family, (str(infos[0][4][0]), port)


def bind_socket(spec: str, umask: int | None) -> socket.socket:
    """Create, bind and listen on the milter socket (as root, before workers fork)."""
    family, address = parse_socket(spec)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            assert isinstance(address, str)
            _remove_stale_socket(Path(address))
            old = os.umask(umask if umask is not None else 0o077)
            try:
                sock.bind(address)
            finally:
                os.umask(old)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        sock.listen(512)
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {spec}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _remove_stale_socket(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ServerError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: left over from a crash
    else:
        raise ServerError(f"{path}: another milter is already listening there")
    finally:
        probe.close()


def default_workers(cpus: int | None = None) -> int:
    """Worker processes when neither --workers nor MailsealWorkers says: half the CPUs
    this process may run on, at least one.

    The milter shares the machine with the MTA, which spends more CPU on each message
    than the milter does (Postfix: up to 3 ms per 2 KB message on the machine of
    docs/performance.md, the milter under 1 ms). Through Postfix on two cores one
    worker delivered as many messages per second as two and used 6-13% less CPU per
    message: a second worker only wakes up more often, for fewer events each time
    (benchmarks/workers.py).
    """
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


def authserv_id_for(cfg: MilterConfig) -> str | None:
    """AuthservID as opendkim.conf(5) reads it: ``HOSTNAME`` means this host's name;
    None (unset) lets each session use the MTA's name (the ``j`` macro)."""
    if cfg.authserv_id and cfg.authserv_id.upper() == "HOSTNAME":
        return socket.gethostname()
    return cfg.authserv_id or None


@dataclass(slots=True)
class Generation:
    """Workers started from one loaded config."""

    cfg: MilterConfig
    pids: set[int] = field(default_factory=set)


class Parent:
    """Supervise the workers; see the module docstring for signals."""

    def __init__(
        self,
        config_path: Path,
        cfg: MilterConfig,
        sock: socket.socket,
        who: Identity | None,
        workers: int,
    ) -> None:
        self.config_path = config_path
        self.sock = sock
        self.who = who
        self.workers = workers
        self.current = Generation(cfg)
        self.draining: list[Generation] = []
        self.stopping = False
        self.reload_wanted = False
        self.restarts: deque[float] = deque()
        # connections per worker, for even accepting; room for a generation draining
        # after a reload or two beside the current one
        self.board = LoadBoard(3 * workers)
        self.slots: dict[int, int] = {}  # worker pid -> its board slot
        self.restart_total = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- workers ---------------------------------------------------------------

    def _spawn(self, gen: Generation) -> None:
        authserv = authserv_id_for(gen.cfg)
        # imported here, before the fork and the privilege drop: the worker's user may
        # not be able to read the Python installation (a pyenv under /root, say)
        from mailseal.milter.worker import worker_main

        slot = self.board.claim()  # None: the board is full, the worker goes without
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                os.close(self._wake_r)
                os.close(self._wake_w)
                for sig in (
                    signal.SIGUSR1,
                    signal.SIGHUP,
                    signal.SIGTERM,
                    signal.SIGINT,
                    signal.SIGCHLD,
                ):
                    signal.signal(sig, signal.SIG_DFL)
                drop_privileges(self.who)
                status = worker_main(self.sock, gen.cfg, authserv, self.board, slot)
            except BaseException:  # noqa: BLE001 - a child must never return into the parent's code
                log.exception("worker failed to start")
            finally:
                logging.shutdown()
                os._exit(status)
        gen.pids.add(pid)
        if slot is not None:
            self.slots[pid] = slot

    def _fill(self) -> None:
        while len(self.current.pids) < self.workers and not self.stopping:
            self._spawn(self.current)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            crashed = not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
            slot = self.slots.pop(pid, None)
            if slot is not None:
                self.board.release(slot)
            if pid in self.current.pids:
                self.current.pids.discard(pid)
                if not self.stopping:
                    self._worker_died(pid, status, crashed)
            for gen in self.draining:
                gen.pids.discard(pid)
            self.draining = [g for g in self.draining if g.pids]

    def _worker_died(self, pid: int, status: int, crashed: bool) -> None:
        how = (
            f"signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"status {os.WEXITSTATUS(status)}"
        )
        log.error(
            "worker %d ended unexpectedly (%s)", pid, how, extra={"event": "milter.worker_died"}
        )
        cfg = self.current.cfg
        if not cfg.auto_restart:
            log.error("AutoRestart is off: stopping", extra={"event": "milter.stop"})
            self.stopping = True
            return
        now = time.monotonic()
        if cfg.auto_restart_rate is not None:
            count, period = cfg.auto_restart_rate
            while self.restarts and now - self.restarts[0] > period:
                self.restarts.popleft()
            if len(self.restarts) >= count:
                log.error(
                    "worker restarts exceed AutoRestartRate %d/%ds: stopping",
                    count,
                    period,
                    extra={"event": "milter.stop"},
                )
                self.stopping = True
                return
        self.restarts.append(now)
        self.restart_total += 1
        if cfg.auto_restart_count and self.restart_total > cfg.auto_restart_count:
            log.error(
                "AutoRestartCount %d reached: stopping",
                cfg.auto_restart_count,
                extra={"event": "milter.stop"},
            )
            self.stopping = True

    # -- reload ----------------------------------------------------------------

    def _reload(self) -> None:
        self.reload_wanted = False
        try:
            new = load_config(self.config_path)
        except (ConfigError, MailsealError, OSError) as exc:
            log.error(
                "reload failed, still serving the old configuration: %s",
                exc,
                extra={"event": "milter.reload_failed"},
            )
            return
        for w in new.warnings:
            log.warning("%s", w, extra={"event": "config.warning"})
        old = self.current
        changed = [
            name
            for name in RESTART_ONLY
            if getattr(new, name, None) != getattr(old.cfg, name, None)
        ]
        if changed:
            log.warning(
                "these options change only on restart: %s",
                ", ".join(changed),
                extra={"event": "milter.restart_needed"},
            )
        self.current = Generation(new)
        self._fill()
        for pid in old.pids:
            _kill(pid, signal.SIGTERM)
        self.draining.append(old)
        log.info(
            "configuration reloaded; %d old worker(s) finishing",
            len(old.pids),
            extra={"event": "milter.reloaded"},
        )

    # -- main loop -------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum in (signal.SIGUSR1, signal.SIGHUP):
            self.reload_wanted = True
        elif signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def run(self) -> int:
        for sig in (signal.SIGUSR1, signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        self._fill()
        log.info(
            "mailseal milter ready, %d worker(s)", self.workers, extra={"event": "milter.ready"}
        )
        while not self.stopping:
            try:
                select.select([self._wake_r], [], [], 5.0)
            except InterruptedError:
                pass
            _drain_pipe(self._wake_r)
            self._reap()
            if self.reload_wanted and not self.stopping:
                self._reload()
            if not self.stopping:
                self._fill()
        return self._shutdown()

    def _shutdown(self) -> int:
        pids = set(self.current.pids).union(*(g.pids for g in self.draining))
        for pid in pids:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while pids and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                pids.discard(pid)
            else:
                time.sleep(0.05)
        for pid in pids:
            _kill(pid, signal.SIGKILL)
        log.info("mailseal milter stopped", extra={"event": "milter.stopped"})
        return 0


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
    except OSError as exc:
        if exc.errno != errno.EAGAIN:
            raise


def daemonize() -> None:
    """Detach from the terminal (Background yes without -f)."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def write_pid(path: Path) -> None:
    try:
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        raise ServerError(f"cannot write PidFile {path}: {exc.strerror or exc}") from None


def serve(
    config_path: Path,
    cfg: MilterConfig,
    *,
    socket_spec: str,
    foreground: bool,
    pid_file: Path | None,
    user: str | None,
    workers: int,
) -> int:
    """Run the milter until stopped; returns the exit status."""
    who = resolve_user(user)
    sock = bind_socket(socket_spec, cfg.umask)
    if not foreground:
        daemonize()
    if pid_file is not None:
        write_pid(pid_file)
    try:
        return Parent(config_path, cfg, sock, who, workers).run()
    finally:
        sock.close()
        if pid_file is not None:
            try:
                pid_file.unlink()
            except OSError:
                pass
        if sock.family == socket.AF_UNIX:
            try:
                family, address = parse_socket(socket_spec)
                if isinstance(address, str):
                    Path(address).unlink()
            except (OSError, ServerError):
                pass
        sys.stdout.flush()
