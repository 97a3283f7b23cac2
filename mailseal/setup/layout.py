"""Where setup puts things, and the opendkim.conf settings it writes (the tutorial's).

Default layout (the tutorial's): ``/etc/opendkim.conf``, and under
``/etc/opendkim``: ``TrustedHosts``, ``KeyTable``, ``SigningTable`` and
``keys/DOMAIN/SELECTOR.private`` (+ ``.txt``). ``--root DIR`` replaces
``/etc/opendkim`` and puts ``opendkim.conf`` in DIR too.

The settings are the tutorial's, except ``KeyTable file:`` (opendkim-testkey
cannot read a ``refile:`` KeyTable, and key names need no patterns), the PID
file at ``/run/opendkim/opendkim.pid`` (Debian's systemd unit watches that
path; ``/var/run`` is a link to ``/run``) and, with two keys per domain,
``MultipleSignatures yes`` so both sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailseal.dkim.keys import KeyType

DEFAULT_ROOT: Final = Path("/etc/opendkim")
DEFAULT_CONFIG: Final = Path("/etc/opendkim.conf")
DEFAULT_SOCKET: Final = "inet:12145@localhost"
DEFAULT_PID_FILE: Final = "/run/opendkim/opendkim.pid"
USER: Final = "opendkim"
#: TrustedHosts without the tutorial's two lines that never match in OpenDKIM
#: (``192.168.0.1/24`` has host bits set; ``*.yourdomain.com`` is not a pattern there).
TRUSTED_HOSTS: Final = ("127.0.0.1", "::1", "localhost")
ED25519_SUFFIX: Final = "-ed25519"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key setup makes (or keeps) for the domain."""

    selector: str
    key_type: KeyType
    directory: Path

    @property
    def private(self) -> Path:
        return self.directory / f"{self.selector}.private"

    @property
    def txt(self) -> Path:
        return self.directory / f"{self.selector}.txt"

    def key_name(self, domain: str) -> str:
        """The KeyTable name, as the tutorial writes it: ``SELECTOR._domainkey.DOMAIN``."""
        return f"{self.selector}._domainkey.{domain}"

    def key_table_value(self, domain: str) -> str:
        """``DOMAIN:SELECTOR:PATH``; Ed25519 adds the algorithm (the fourth field)."""
        value = f"{domain}:{self.selector}:{self.private}"
        return value + (":ed25519-sha256" if self.key_type is KeyType.ED25519 else "")


@dataclass(frozen=True, slots=True)
class Layout:
    """The paths of one installation."""

    root: Path
    config: Path

    @classmethod
    def at(cls, root: Path | None, config: Path | None = None) -> Layout:
        """The default layout, or everything under ``root`` (opendkim.conf included)."""
        base = root if root is not None else DEFAULT_ROOT
        conf = config or (base / "opendkim.conf" if root is not None else DEFAULT_CONFIG)
        return cls(base, conf)

    @property
    def key_table(self) -> Path:
        return self.root / "KeyTable"

    @property
    def signing_table(self) -> Path:
        return self.root / "SigningTable"

    @property
    def trusted_hosts(self) -> Path:
        return self.root / "TrustedHosts"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    def key_dir(self, domain: str) -> Path:
        return self.keys / domain

    def key_specs(self, domain: str, selector: str, ed25519: bool) -> list[KeySpec]:
        """RSA under SELECTOR; with Ed25519 a second key under SELECTOR-ed25519 (both sign)."""
        specs = [KeySpec(selector, KeyType.RSA, self.key_dir(domain))]
        if ed25519:
            specs.append(KeySpec(selector + ED25519_SUFFIX, KeyType.ED25519, self.key_dir(domain)))
        return specs

    def settings(
        self, *, socket: str = DEFAULT_SOCKET, multiple: bool = False
    ) -> list[tuple[str, str]]:
        """The opendkim.conf settings, in the tutorial's order."""
        wanted = [
            ("Syslog", "yes"),
            ("UMask", "002"),
            ("Canonicalization", "relaxed/simple"),
            ("Mode", "sv"),
            ("PidFile", DEFAULT_PID_FILE),
            ("SignatureAlgorithm", "rsa-sha256"),
            ("AutoRestart", "yes"),
            ("AutoRestartRate", "10/1h"),
            ("UserID", f"{USER}:{USER}"),
            ("Socket", socket),
            ("ExternalIgnoreList", f"refile:{self.trusted_hosts}"),
            ("InternalHosts", f"refile:{self.trusted_hosts}"),
            ("KeyTable", f"file:{self.key_table}"),
            ("SigningTable", f"refile:{self.signing_table}"),
        ]
        if multiple:
            wanted.append(("MultipleSignatures", "yes"))
        return wanted


def postfix_milter(socket: str) -> str:
    """The Postfix ``smtpd_milters`` value for an opendkim.conf ``Socket``."""
    kind, _, rest = socket.partition(":")
    if kind.lower() in ("inet", "inet6"):
        port, _, host = rest.partition("@")
        return f"inet:{host or 'localhost'}:{port}"
    path = rest if kind.lower() in ("local", "unix") else socket
    return f"unix:{path}"


__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_PID_FILE",
    "DEFAULT_ROOT",
    "DEFAULT_SOCKET",
    "ED25519_SUFFIX",
    "KeySpec",
    "Layout",
    "TRUSTED_HOSTS",
    "USER",
    "postfix_milter",
]
