"""Milter socket specifications, parsed (no sockets opened here).

The forms are libmilter's (``smfi_setconn``), which OpenDKIM's ``Socket`` option
and ``-p`` use: ``inet:PORT@HOST``, ``inet:PORT`` (every interface),
``inet6:PORT@HOST``, ``unix:/path``, ``local:/path`` and a bare path. For
convenience Postfix's form of the same endpoint (``inet:HOST:PORT``, as written in
``smtpd_milters``, IPv6 hosts in brackets) is read too.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class SocketFamily(enum.Enum):
    """The kind of socket a milter listens on."""

    INET = "inet"
    INET6 = "inet6"
    UNIX = "unix"


class SocketSpec(NamedTuple):
    """A parsed specification; unpacks as ``family, address``."""

    family: SocketFamily
    #: A path for UNIX; ``(host, port)`` otherwise, host ``""`` meaning every interface.
    address: str | tuple[str, int]


_FORMS = "inet:PORT@HOST, inet:PORT, inet6:PORT@HOST, unix:/path, local:/path or /path"


def _port(text: str, spec: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"socket {spec!r}: port {text!r} must be a number from 1 to 65535")
    return int(text)


def parse_socket_spec(spec: str) -> SocketSpec:
    """Read a milter socket specification; raise ValueError naming the accepted forms."""
    text = spec.strip()
    kind, colon, rest = text.partition(":")
    if not colon:
        if not text:
            raise ValueError(f"empty socket specification (use {_FORMS})")
        return SocketSpec(SocketFamily.UNIX, text)
    kind = kind.lower()
    if kind in ("unix", "local"):
        if not rest:
            raise ValueError(f"socket {spec!r}: no path after {kind}:")
        return SocketSpec(SocketFamily.UNIX, rest)
    if kind not in ("inet", "inet6"):
        raise ValueError(f"socket {spec!r}: unknown kind {kind!r} (use {_FORMS})")
    if "@" in rest:
        port_text, _, host = rest.partition("@")
    elif rest.isdigit():
        port_text, host = rest, ""
    else:
        host, _, port_text = rest.rpartition(":")  # Postfix: inet:host:port
        if not host:
            raise ValueError(f"socket {spec!r}: expected PORT@HOST (use {_FORMS})")
    port = _port(port_text, spec)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    family = SocketFamily.INET6 if kind == "inet6" or ":" in host else SocketFamily.INET
    return SocketSpec(family, (host, port))
