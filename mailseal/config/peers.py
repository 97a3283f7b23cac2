"""Peer lists (InternalHosts, ExternalIgnoreList, PeerList): who is the SMTP client?

OpenDKIM's rules (``util.c``, ``dkimf_checkhost`` and ``dkimf_checkip``): an
entry is a host name, a ``.domain`` (any name below it), an IPv4 or IPv6
address, optionally in brackets, or a CIDR network; ``!`` in front excludes.
The host name is tried first, from the full name down its parent domains
(``mail.example.com``, ``.example.com``, ``.com``), then the address from the
exact address down the prefix lengths (/32 ... /0). At each step an exclusion
is looked for before an inclusion, so the most specific entry wins. The client
matches when its name or its address does.

Two tutorial lines never match in OpenDKIM, and mailseal matches what they
obviously mean, with a warning naming the line:

- ``192.168.0.1/24``: OpenDKIM looks up the network as ``192.168.0.0/24`` and
  compares text, so an entry with host bits set is never equal to it.
- ``*.yourdomain.com`` in a ``refile:`` list: the pattern ``^.*\\.yourdomain\\.com$``
  also matches the exclusion probe ``!mail.yourdomain.com`` that OpenDKIM tries
  first, so every host it was meant to add is treated as excluded.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from mailseal.config.datasets import Dataset, DatasetKind, glob_to_regex
from mailseal.config.model import Warnings
from mailseal.errors import Where

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: OpenDKIM's default InternalHosts (opendkim.h DEFINTERNAL: "csl:127.0.0.1,::1").
DEFAULT_INTERNAL: Final = ("127.0.0.1", "::1")
DEFAULT_WHERE: Final = Where(Path("<default>"), 0)

# Characters that make a refile: line a pattern rather than a literal name or address.
_PATTERN_CHARS: Final = frozenset("*?[](){}|^$\\")
_HOST_NAME: Final = re.compile(r"\.?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")


@dataclass(frozen=True, slots=True)
class PeerEntry:
    """One line of a peer list, read."""

    text: str  # as written
    where: Where
    negated: bool
    network: Network | None = None
    name: str | None = None  # lower case; a leading "." covers every name below it
    regex: re.Pattern[str] | None = None  # a refile: wildcard pattern


_SEEN_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class PeerList:
    """A set of SMTP clients; ask it with ``matches(ip, hostname)``."""

    entries: tuple[PeerEntry, ...] = ()
    _names: dict[str, bool] = field(init=False, repr=False, compare=False)
    _nets: tuple[PeerEntry, ...] = field(init=False, repr=False, compare=False)
    _patterns: tuple[PeerEntry, ...] = field(init=False, repr=False, compare=False)
    # answers so far: a milter sees the same few clients over and over
    _seen: dict[tuple[str | None, str | None], bool] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        names: dict[str, bool] = {}
        for e in self.entries:
            if e.name is not None:  # an exclusion beats an inclusion of the same name
                names[e.name] = names.get(e.name, False) or e.negated
        nets = [e for e in self.entries if e.network is not None]
        # Longest prefix first; at equal length exclusions first (OpenDKIM's probe order).
        nets.sort(key=lambda e: (-_prefix(e), not e.negated))
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_nets", tuple(nets))
        object.__setattr__(self, "_patterns", tuple(e for e in self.entries if e.regex))

    @classmethod
    def default_internal(cls) -> PeerList:
        """OpenDKIM's InternalHosts when none is given: 127.0.0.1 and ::1."""
        return cls.parse(((text, DEFAULT_WHERE) for text in DEFAULT_INTERNAL), Warnings())

    @classmethod
    def from_dataset(cls, dataset: Dataset, warnings: Warnings) -> PeerList:
        """Read a loaded dataset's keys as peer entries (values are ignored, as in OpenDKIM)."""
        refile = dataset.kind is DatasetKind.REFILE
        return cls.parse(((e.key, e.where) for e in dataset.entries), warnings, refile=refile)

    @classmethod
    def parse(
        cls, items: Iterable[tuple[str, Where]], warnings: Warnings, *, refile: bool = False
    ) -> PeerList:
        return cls(tuple(_entry(text, where, warnings, refile) for text, where in items))

    def matches(self, ip: str | None, hostname: str | None) -> bool:
        """Whether a client with this address and/or name is in the list."""
        key = (ip, hostname)
        found = self._seen.get(key)
        if found is None:
            found = self._host(hostname) is True or self._ip(ip) is True
            if len(self._seen) >= _SEEN_SIZE:
                self._seen.clear()
            self._seen[key] = found
        return found

    def _host(self, hostname: str | None) -> bool | None:
        if not hostname:
            return None
        host = hostname.strip().lower()
        if not host:
            return None
        negative = [p for p in self._patterns if p.negated and p.regex and p.regex.fullmatch(host)]
        if self._names.get(host) is True or negative:
            return False
        if host in self._names or any(p.regex and p.regex.fullmatch(host) for p in self._patterns):
            return True
        at = host.find(".", 1)
        while at >= 0:
            verdict = self._names.get(host[at:])
            if verdict is not None:
                return not verdict
            at = host.find(".", at + 1)
        return None

    def _ip(self, ip: str | None) -> bool | None:
        address = _address(ip)
        if address is None:
            return None
        verdict = self._ip_verdict(address)
        if verdict is None and isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is not None:
                # OpenDKIM difference: ::ffff:192.0.2.1 also matches IPv4 entries.
                verdict = self._ip_verdict(mapped)
        return verdict

    def _ip_verdict(self, address: Address) -> bool | None:
        # self._nets is sorted longest prefix first, exclusions first at equal length.
        containing = [
            e
            for e in self._nets
            if e.network is not None
            and e.network.version == address.version
            and address in e.network
        ]
        full = address.max_prefixlen
        exact = [e for e in containing if _prefix(e) == full]
        text = str(address)
        hits = [p for p in self._patterns if p.regex is not None and p.regex.fullmatch(text)]
        # The exact address (and any pattern, which OpenDKIM tries against it) comes first.
        if any(e.negated for e in exact) or any(p.negated for p in hits):
            return False
        if exact or hits:
            return True
        for entry in containing:
            return not entry.negated
        return None


def _prefix(entry: PeerEntry) -> int:
    return entry.network.prefixlen if entry.network is not None else -1


def _address(ip: str | None) -> Address | None:
    if not ip:
        return None
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _entry(text: str, where: Where, warnings: Warnings, refile: bool) -> PeerEntry:
    negated = text.startswith("!")
    body = text[1:] if negated else text
    if refile and _PATTERN_CHARS.intersection(body):
        return _pattern_entry(text, body, where, warnings, negated)
    network, was_address = _network(body, text, where, warnings)
    if network is not None:
        return PeerEntry(text, where, negated, network=network)
    name = body.lower()
    if not was_address and not _HOST_NAME.fullmatch(name):
        warnings.add(where, f"{text!r} is neither a host name nor an IP address; it never matches")
    return PeerEntry(text, where, negated, name=name)


def _pattern_entry(
    text: str, body: str, where: Where, warnings: Warnings, negated: bool
) -> PeerEntry:
    try:
        regex = re.compile(glob_to_regex(body), re.IGNORECASE)
    except (re.error, RecursionError, OverflowError, ValueError):
        warnings.add(where, f"{text!r} is not a usable pattern; it never matches")
        return PeerEntry(text, where, negated, name=body.lower())
    if not negated and body.startswith("*"):
        # OpenDKIM compat: the trap documented at the top of this module.
        suffix = body.lstrip("*")
        meant = f"any host name ending in {suffix!r}" if suffix else "any host name"
        advice = f" (write '{suffix}' to mean the same in OpenDKIM)" if suffix[:1] == "." else ""
        warnings.add(
            where,
            f"OpenDKIM never matches {text!r}: it tries the exclusion '!host' first and this "
            f"pattern matches that too, so the host counts as excluded; mailseal matches {meant}"
            + advice,
        )
    return PeerEntry(text, where, negated, regex=regex)


def _network(body: str, text: str, where: Where, warnings: Warnings) -> tuple[Network | None, bool]:
    """The network an entry names, and whether it was meant as an address at all."""
    address, slash, length = body.partition("/")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    try:
        host = ipaddress.ip_address(address)
    except ValueError:
        if slash or _looks_numeric(address):
            warnings.add(where, f"{text!r} is not a valid IP address or network; it never matches")
            return None, True
        return None, False
    try:
        network = ipaddress.ip_network(f"{host}/{length}" if slash else str(host), strict=False)
    except ValueError:
        warnings.add(where, f"{text!r} has a bad prefix length; it never matches")
        return None, True
    if network.network_address != host:
        # OpenDKIM compat: host bits set; see the module docstring.
        warnings.add(
            where,
            f"OpenDKIM never matches {text!r} (a network must have its host bits zero); "
            f"mailseal reads it as {network} (write that to mean the same in OpenDKIM)",
        )
    elif host.version == 6 and address.lower() != str(host):
        # OpenDKIM difference: it compares the text inet_ntop() writes.
        warnings.add(
            where,
            f"OpenDKIM never matches {text!r} (it compares IPv6 addresses as inet_ntop() "
            f"writes them); mailseal reads it as {host} (write that for OpenDKIM)",
        )
    return network, True


def _looks_numeric(text: str) -> bool:
    return (
        bool(text)
        and all(c in "0123456789abcdefABCDEF.:" for c in text)
        and any(c.isdigit() for c in text)
    )


__all__ = ["DEFAULT_INTERNAL", "PeerEntry", "PeerList"]
