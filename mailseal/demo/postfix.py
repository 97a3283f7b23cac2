"""A private Postfix instance on loopback, for the demo and the tests.

``PostfixInstance`` runs ``postfix -c DIR/etc`` with its own main.cf and
master.cf; its queue directory, data directory and ``maillog_file`` are under
DIR too (a fresh directory on tmpfs when /dev/shm is one). It listens only on
127.0.0.1: one smtpd per listener, each on a free port (``add_listener`` adds
more, with ``-o name=value`` overrides in master.cf), and relays everything
with ``smtp`` to ``[127.0.0.1]:relay_port`` (a catcher). Nothing under
/etc/postfix is read or changed: as root, ``postfix -c DIR`` and ``sendmail
-C DIR`` need no ``alternate_config_directories`` entry (Postfix trusts the
super-user). So it runs beside a system Postfix, or where Postfix was
installed with "No configuration".

Facts this relies on (Postfix 3.7, Debian 12):

- Postfix commands print their fatal errors to stderr only when it is a
  terminal (otherwise only to syslog, which many machines lack), so they run
  under a pseudo-terminal here and their output goes into the errors raised.
- ``postfix start`` runs ``post-install create-missing`` (about 2 s), which
  makes the queue directories; ``postfix check`` (2 s more) runs only after a
  failed start, for its diagnostics.
- ``maillog_file`` needs a ``postlog`` service in master.cf and a path under
  one of ``maillog_file_prefixes``.

Every wait is bounded; ``stop`` runs ``postfix -c DIR stop`` and then signals
only the processes this instance's master started (found in /proc).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

from mailseal.demo import procs
from mailseal.demo.procs import (
    COMMAND_TIMEOUT,
    CommandError,
    descendants,
    free_port,
    kill_pids,
    pid_alive,
    proc_status,
    tmpfs_dir,
    wait_port,
)

POSTFIX_BIN: Final = "/usr/sbin/postfix"
POSTCONF_BIN: Final = "/usr/sbin/postconf"
POSTQUEUE_BIN: Final = "/usr/sbin/postqueue"
SENDMAIL_BIN: Final = "/usr/sbin/sendmail"
APT_POSTFIX: Final = "apt-get install -y postfix"
MAX_MESSAGE: Final = 100 * 1024 * 1024  # message_size_limit


class PostfixUnavailable(Exception):
    """Postfix cannot run here; the message says why and what to do."""


class PostfixError(Exception):
    """A private instance failed (start, reload, sendmail); the message shows its output."""


# --------------------------------------------------------------------------
# can it run here?


def unavailable_reason() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    for b in (POSTFIX_BIN, POSTCONF_BIN, SENDMAIL_BIN):
        if not os.path.exists(b):
            return f"Postfix is not installed ({b} missing): {APT_POSTFIX}"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (postfix -c DIR start)"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return f"no 'postfix' user or 'postdrop' group: {APT_POSTFIX}"
    return None


def other_mtas() -> list[str]:
    """Installed Debian packages, other than postfix, that provide mail-transport-agent.

    Installing postfix would remove them (they all conflict). Empty where
    dpkg-query is missing (not a Debian system) or fails.
    """
    try:
        cp = subprocess.run(
            ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}|${Provides}\n"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in cp.stdout.decode("utf-8", "replace").splitlines():
        status, _, rest = line.partition("|")
        package, _, provides = rest.partition("|")
        provided = {p.strip().split(" ")[0] for p in provides.split(",")}
        if status.startswith("ii") and "mail-transport-agent" in provided:
            if package != "postfix":
                found.append(package)
    return found


# --------------------------------------------------------------------------
# commands (procs.py does the work; a command that hangs is a PostfixError here)


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | None = None,
    timeout: float = COMMAND_TIMEOUT,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a program with a bounded wait; its process group is killed on timeout."""
    try:
        return procs.run(cmd, input=input, timeout=timeout, env=env)
    except CommandError as exc:
        raise PostfixError(str(exc)) from None


def run_tty(
    cmd: Sequence[str | os.PathLike[str]],
    timeout: float = COMMAND_TIMEOUT,
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run on a pseudo-terminal (Postfix prints fatal errors only to a terminal)."""
    try:
        return procs.run_tty(cmd, timeout=timeout, env=env)
    except CommandError as exc:
        raise PostfixError(str(exc)) from None


# --------------------------------------------------------------------------
# the private Postfix instance


@dataclass
class Listener:
    name: str
    port: int
    overrides: dict[str, str]


MASTER_CF_SERVICES: Final = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# maillog lines worth showing when something went wrong
_PROBLEM = re.compile(r"\b(fatal|panic|error|warning|reject|milter-\w+):", re.IGNORECASE)
_QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")


def queue_id(reply: str) -> str | None:
    """The queue id in an SMTP reply such as ``250 2.0.0 Ok: queued as 4Xy1z2``."""
    m = _QUEUED_AS.search(reply)
    return m.group(1) if m else None


class PostfixInstance:
    """``postfix -c DIR/etc`` with everything under DIR; see the module docstring.

    ``main`` holds extra main.cf settings (the milter ones: ``smtpd_milters``,
    ``non_smtpd_milters``, ``milter_protocol``, ``milter_default_action``...)
    and may override the defaults of ``main_cf``. ``add_listener(name,
    overrides)`` adds an smtpd on another free port with ``-o name=value``
    overrides (e.g. a different ``smtpd_milters``). ``base`` is the directory
    for everything (default: a new one from ``tmpfs_dir``); ``cleanup``
    removes it.
    """

    def __init__(
        self, relay_port: int, main: dict[str, str] | None = None, base: Path | None = None
    ) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise PostfixUnavailable(reason)
        self.base = base or tmpfs_dir("mailseal-postfix-")
        self.etc = self.base / "etc"
        self.queue = self.base / "queue"
        self.data = self.base / "data"
        self.maillog = self.base / "maillog"
        self.relay_port = relay_port
        self.main = dict(main or {})
        self.listeners: dict[str, Listener] = {}
        self.master_pid: int | None = None
        self.started = False
        self.add_listener("default", {})

    # -- configuration -------------------------------------------------------

    def add_listener(self, name: str, overrides: dict[str, str]) -> Listener:
        if self.started:
            raise RuntimeError("listeners are fixed once the instance runs")
        lst = Listener(name, free_port(), dict(overrides))
        self.listeners[name] = lst
        return lst

    def port(self, listener: str = "default") -> int:
        return self.listeners[listener].port

    def main_cf(self) -> dict[str, str]:
        tag = f"postfix-mailseal-{self.listeners['default'].port}"
        cf = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": tag,
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.base),
            "myhostname": "mx.example.com",
            "mydomain": "example.com",
            "myorigin": "$mydomain",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8 [::1]/128",
            "relayhost": f"[127.0.0.1]:{self.relay_port}",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtp_dns_support_level": "disabled",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "message_size_limit": str(MAX_MESSAGE),
            "mailbox_size_limit": "0",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtputf8_enable": "no",
            "smtpd_error_sleep_time": "0",
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "milter_connect_timeout": "10s",
            "milter_command_timeout": "30s",
            "milter_content_timeout": "120s",
        }
        cf.update(self.main)
        return cf

    def write_config(self) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        self.queue.mkdir(mode=0o755, exist_ok=True)  # post-install makes the rest
        lines = [f"{k} = {v}".rstrip() for k, v in self.main_cf().items()]
        (self.etc / "main.cf").write_text("\n".join(lines) + "\n")
        master = []
        for lst in self.listeners.values():
            master.append(f"127.0.0.1:{lst.port} inet n - n - - smtpd")
            for k, v in lst.overrides.items():
                master.append(f"  -o {{ {k} = {v} }}" if " " in v or not v else f"  -o {k}={v}")
        (self.etc / "master.cf").write_text("\n".join(master) + "\n" + MASTER_CF_SERVICES)

    # -- life cycle ----------------------------------------------------------

    def _postfix(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str]:
        return run_tty([POSTFIX_BIN, "-c", str(self.etc), *args], timeout=timeout)

    def start(self, timeout: float = 30) -> Self:
        """Write the configuration, ``postfix -c DIR start``, wait until every smtpd accepts.

        PostfixError (after stopping what did start) when it does not: the
        message has the command's output and the maillog's relevant lines.
        """
        self.write_config()
        # `start` makes the queue directories itself (post-install create-missing);
        # `check` (2 s more: it checks every file's permissions) only on failure
        self.started = True
        try:
            rc, out = self._postfix("start")
        except PostfixError as e:
            rc, out = -1, str(e)
        if rc != 0:
            with contextlib.suppress(PostfixError):
                out += "\n--- postfix check ---\n" + self._postfix("check")[1]
        pidfile = self.queue / "pid" / "master.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.master_pid is None and rc == 0:
            with contextlib.suppress(OSError, ValueError):
                self.master_pid = int(pidfile.read_text().strip())
            if self.master_pid is None:
                time.sleep(0.05)
        if rc != 0 or self.master_pid is None:
            self.stop()
            raise PostfixError(
                f"postfix -c {self.etc} start failed (exit {rc}):\n{out.strip()}\n"
                f"{self.log_excerpt()}"
            )
        for lst in self.listeners.values():
            left = max(0.5, deadline - time.monotonic())
            if not wait_port("127.0.0.1", lst.port, left, lambda: pid_alive(self.master_pid or 0)):
                self.stop()
                raise PostfixError(
                    f"Postfix smtpd {lst.name} on 127.0.0.1:{lst.port} "
                    f"did not accept within {timeout}s:\n{self.log_excerpt()}"
                )
        return self

    def reload(self, main: dict[str, str] | None = None) -> None:
        """Change main.cf settings (postconf -e) and ``postfix reload``."""
        if main:
            self.main.update(main)
            args = [f"{k}={v}" for k, v in main.items()]
            cp = run([POSTCONF_BIN, "-c", str(self.etc), "-e", *args])
            if cp.returncode != 0:
                raise PostfixError(f"postconf -e failed: {cp.stderr.decode('utf-8', 'replace')}")
        rc, out = self._postfix("reload")
        if rc != 0:
            raise PostfixError(f"postfix reload failed: {out}\n{self.log()}")
        time.sleep(0.5)  # master re-reads main.cf and restarts its children

    def pids(self) -> list[int]:
        """The master and every process it started (now)."""
        pid = self.master_pid
        return [pid, *descendants(pid)] if pid and pid_alive(pid) else []

    def stop(self, timeout: float = 15) -> None:
        """``postfix -c DIR stop``; then SIGTERM/SIGKILL whatever this master started
        and is still there. Never touches other processes."""
        if not self.started:
            return
        pid = self.master_pid
        family = [pid, *descendants(pid)] if pid else []
        with contextlib.suppress(PostfixError):
            self._postfix("stop", timeout=timeout)
        deadline = time.monotonic() + timeout
        while pid and time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        leftover = [p for p in family if pid_alive(p)]
        if leftover:  # only processes this instance's master started
            kill_pids(leftover)
        self.started = False

    def cleanup(self) -> None:
        """Stop, then remove the instance's directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- looking -------------------------------------------------------------

    def log(self, tail: int = 8000) -> str:
        try:
            text = self.maillog.read_text(errors="replace")
        except OSError:
            return "(no maillog yet)"
        return f"--- {self.maillog} (last {tail} chars) ---\n" + text[-tail:]

    def log_lines(self, needle: str | None = None) -> list[str]:
        """The maillog's lines (those containing ``needle``, if given)."""
        try:
            text = self.maillog.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if needle is None or needle in line]

    def log_excerpt(self, tail: int = 20) -> str:
        """The maillog's warnings, errors and milter replies, else its last ``tail`` lines."""
        lines = self.log_lines()
        if not lines:
            return f"(nothing in {self.maillog})"
        picked = [line for line in lines if _PROBLEM.search(line)] or lines
        return f"--- {self.maillog} ---\n" + "\n".join(picked[-tail:])

    def log_mark(self) -> int:
        try:
            return self.maillog.stat().st_size
        except OSError:
            return 0

    def log_since(self, mark: int) -> str:
        try:
            with self.maillog.open("rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def postconf(self, *names: str) -> dict[str, str]:
        cp = run([POSTCONF_BIN, "-c", str(self.etc), *names])
        out = {}
        for line in cp.stdout.decode().splitlines():
            k, _, v = line.partition(" = ")
            out[k.strip()] = v
        return out

    def queue_listing(self) -> str:
        cp = run([POSTQUEUE_BIN, "-c", str(self.etc), "-p"])
        return cp.stdout.decode("utf-8", "replace") + cp.stderr.decode("utf-8", "replace")

    def describe(self) -> str:
        return f"{self.log()}\n--- queue ---\n{self.queue_listing()}"

    # -- sending -------------------------------------------------------------

    @contextlib.contextmanager
    def smtp(self, listener: str = "default", timeout: float = 120) -> Iterator[smtplib.SMTP]:
        """An SMTP session with the listener's smtpd, from 127.0.0.1 (EHLO done)."""
        s = smtplib.SMTP(
            "127.0.0.1",
            self.port(listener),
            local_hostname="client.example.com",
            timeout=timeout,
            source_address=("127.0.0.1", 0),
        )
        try:
            s.ehlo()
            yield s
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                s.quit()
            s.close()

    def send_smtp(
        self,
        msg: bytes,
        sender: str = "alice@example.com",
        rcpts: Sequence[str] = ("bob@example.net",),
        listener: str = "default",
        timeout: float = 120,
    ) -> dict[str, tuple[int, bytes]]:
        """smtplib's ``sendmail``: the refused recipients (raises when all are refused)."""
        with self.smtp(listener, timeout) as s:
            return s.sendmail(sender, list(rcpts), msg)

    def submit(
        self,
        msg: bytes,
        sender: str,
        rcpts: Sequence[str],
        listener: str = "default",
        timeout: float = 60,
    ) -> str:
        """MAIL, RCPT, DATA: the final reply (``250 2.0.0 Ok: queued as ...``).

        smtplib.SMTPResponseException (or a subclass) when a step is refused,
        e.g. ``451 4.7.1`` when the milter tempfails the message.
        """
        with self.smtp(listener, timeout) as s:
            code, text = s.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, sender)
            for r in rcpts:
                code, text = s.rcpt(r)
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({r: (code, text)})
            code, text = s.data(msg)  # raises SMTPDataError when not 250
            return f"{code} {text.decode('utf-8', 'replace')}"

    def sendmail(
        self,
        msg: bytes,
        sender: str = "alice@example.com",
        rcpts: Sequence[str] = ("bob@example.net",),
        *,
        use_t: bool = False,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[bytes]:
        """The ``sendmail`` command (postdrop -> maildrop -> pickup -> cleanup): the
        ``non_smtpd_milters`` path."""
        env = dict(os.environ, MAIL_CONFIG=str(self.etc))
        cmd = [SENDMAIL_BIN, "-C", str(self.etc), "-oi", "-f", sender]
        cmd += ["-t"] if use_t else list(rcpts)
        cp = run(cmd, input=msg, env=env, timeout=timeout)
        if cp.returncode != 0:
            raise PostfixError(f"sendmail exit {cp.returncode}: {cp.stderr.decode()}\n{self.log()}")
        return cp


__all__ = [
    "COMMAND_TIMEOUT",
    "Listener",
    "PostfixError",
    "PostfixInstance",
    "PostfixUnavailable",
    "free_port",
    "kill_pids",
    "descendants",
    "other_mtas",
    "pid_alive",
    "proc_status",
    "queue_id",
    "run",
    "run_tty",
    "tmpfs_dir",
    "unavailable_reason",
    "wait_port",
]
