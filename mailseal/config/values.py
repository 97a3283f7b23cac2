"""Typed readers for single opendkim.conf values; each raises ConfigError at the setting's line."""

from __future__ import annotations

import re
from typing import Final

from mailseal.config.grammar import Setting
from mailseal.config.model import Warnings
from mailseal.dkim.canon import Canon, CanonError, parse_canon
from mailseal.dns.resolver import parse_server_spec
from mailseal.errors import ConfigError, DnsError

#: syslog facilities OpenDKIM knows (opendkim.c ``log_facilities``).
SYSLOG_FACILITIES: Final = frozenset(
    ["auth", "cron", "daemon", "kern", "lpr", "mail", "news", "security", "syslog", "user", "uucp"]
    + [f"local{n}" for n in range(8)]
)
_RATE: Final = re.compile(r"([0-9]+)/([0-9]+)([sSmMhHdD]?)")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SERVICE: Final = re.compile(r"[0-9]{1,5}|[A-Za-z][A-Za-z0-9-]*")
_SOCKET_HINT: Final = "e.g. local:/run/opendkim/opendkim.sock or inet:8891@localhost"


def parse_mode(setting: Setting) -> tuple[bool, bool]:
    """Mode: ``s`` (sign) and/or ``v`` (verify) -> (sign, verify)."""
    letters = setting.value.lower()
    for letter in letters:
        if letter not in "sv":
            raise ConfigError(
                setting.where,
                "Mode",
                f"unknown mode {letter!r} in {setting.value!r}",
                "use s (sign), v (verify) or sv",
            )
    return "s" in letters, "v" in letters


def parse_canonicalization(setting: Setting) -> tuple[Canon, Canon]:
    """Canonicalization: ``header[/body]``, body simple by default (RFC 6376 §3.5 c=)."""
    try:
        return parse_canon(setting.value)
    except CanonError:
        raise ConfigError(
            setting.where,
            "Canonicalization",
            f"unknown value {setting.value!r}",
            "use simple or relaxed, or header/body such as relaxed/simple",
        ) from None


def parse_socket(setting: Setting) -> str:
    """Socket, as libmilter's smfi_setconn() reads it: local:/path, inet[6]:port[@host]."""
    text = setting.value
    kind, colon, rest = text.partition(":")
    kind = kind.lower()
    if not colon:
        if text.startswith("/"):
            return text  # libmilter reads a bare path as local:
        raise ConfigError(setting.where, "Socket", f"{text!r} is not a socket", _SOCKET_HINT)
    if kind in ("local", "unix"):
        if not rest:
            raise ConfigError(setting.where, "Socket", f"{text!r} names no path", _SOCKET_HINT)
        return text
    if kind in ("inet", "inet6"):
        port, at, host = rest.partition("@")
        if not _SERVICE.fullmatch(port) or (port.isdigit() and not 0 < int(port) < 65536):
            raise ConfigError(
                setting.where, "Socket", f"{port!r} is not a port in {text!r}", _SOCKET_HINT
            )
        if at and not host:
            raise ConfigError(setting.where, "Socket", f"{text!r} names no host", _SOCKET_HINT)
        return text
    raise ConfigError(setting.where, "Socket", f"unknown socket type {kind!r}", _SOCKET_HINT)


def parse_authserv_id(setting: Setting) -> str:
    """AuthservID, kept as written; ``HOSTNAME`` asks for this host's name (the shell's job)."""
    text = setting.value
    if any(c.isspace() or c in ';"()\\' for c in text):
        raise ConfigError(
            setting.where,
            "AuthservID",
            f"{text!r} is not a single word",
            "an authserv-id is a name such as mail.example.com (RFC 8601 §2.5)",
        )
    return text


def parse_nameservers(setting: Setting) -> tuple[str, ...]:
    """Nameservers: a comma-separated list of server addresses (``host[:port]`` allowed)."""
    servers = []
    for item in setting.value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            parse_server_spec(item)
        except DnsError as exc:
            raise ConfigError(setting.where, "Nameservers", str(exc)) from None
        servers.append(item)
    if not servers:
        raise ConfigError(setting.where, "Nameservers", "no server address", "e.g. 127.0.0.1")
    return tuple(servers)


def parse_umask(setting: Setting, warnings: Warnings) -> int:
    """UMask, read as strtol(s, 0) reads it, except an all-octal-digit decimal (see below)."""
    assert setting.number is not None
    value = setting.number
    text = setting.value.lstrip("+")
    if len(text) > 1 and text[0] in "1234567" and all(c in "01234567" for c in text):
        # OpenDKIM difference: OpenDKIM reads "UMask 22" as decimal 22 (octal 026);
        # nobody means that, so read it as the octal 022 it was meant to be.
        value = int(text, 8)
        warnings.add(
            setting.where,
            f"OpenDKIM reads UMask {text} as decimal {setting.number} (octal "
            f"{setting.number:03o}); mailseal reads it as octal 0{text} (write 0{text})",
        )
    if not 0 <= value <= 0o777:
        raise ConfigError(
            setting.where, "UMask", f"{setting.value!r} is not a umask", "e.g. 007 or 002"
        )
    return value


def parse_user_id(setting: Setting) -> str:
    """UserID: ``user[:group]``, checked for shape; the shell looks the user up."""
    user, colon, group = setting.value.partition(":")
    if not user or (colon and not group) or any(c.isspace() for c in setting.value):
        raise ConfigError(
            setting.where, "UserID", f"{setting.value!r} is not user[:group]", "e.g. opendkim"
        )
    return setting.value


def parse_syslog_facility(setting: Setting, warnings: Warnings) -> str:
    """SyslogFacility: a facility OpenDKIM knows; an unknown one warns and uses mail."""
    name = setting.value.lower()
    if name not in SYSLOG_FACILITIES:
        warnings.add(setting.where, f"unknown syslog facility {setting.value!r}; using mail")
        return "mail"
    return "auth" if name == "security" else name


def parse_restart_rate(
    setting: Setting, auto_restart: bool, warnings: Warnings
) -> tuple[int, int] | None:
    """AutoRestartRate ``n/t[u]`` -> (n, seconds): ``10/1h`` is (10, 3600)."""
    match = _RATE.fullmatch(setting.value)
    if match is None or int(match.group(2)) == 0:
        if not auto_restart:  # OpenDKIM compat: it reads the rate only with AutoRestart yes
            warnings.add(setting.where, f"AutoRestartRate {setting.value!r} is invalid; ignored")
            return None
        raise ConfigError(
            setting.where,
            "AutoRestartRate",
            f"{setting.value!r} is not a rate",
            "write restarts/time with s, m, h or d, e.g. 10/1h",
        )
    seconds = int(match.group(2)) * _UNIT_SECONDS[match.group(3).lower()]
    return int(match.group(1)), seconds


__all__ = [
    "SYSLOG_FACILITIES",
    "parse_authserv_id",
    "parse_canonicalization",
    "parse_mode",
    "parse_nameservers",
    "parse_restart_rate",
    "parse_socket",
    "parse_syslog_facility",
    "parse_umask",
    "parse_user_id",
]
