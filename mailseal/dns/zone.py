"""Answer DNS questions from RFC 1035 master files: offline mode (``--zone``) and tests.

:class:`ZoneResolver` loads one or more zone files (or zone text) and answers
the way a recursive resolver would answer from that data alone: NXDOMAIN for
a name that does not exist, NODATA for a name that exists (it owns records, or
names below it do: an empty non-terminal, RFC 8020) but has no record of the
asked type, CNAME chains followed to their end (RFC 1034 §3.6.2) and wildcards
expanded (RFC 4592). Nothing here touches the network.

Relative names in a file start from the ``origin`` passed in, else from the
owner of the file's first SOA record, and ``$ORIGIN`` lines move them on as
usual. A file with none of these may still use absolute names (ending in a
dot), which is what a small hand-written test zone usually is. Several files
may hold several zones (see :mod:`mailseal.dns.zonefile` for the rules).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

import dns.name
import dns.node
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.zone

from mailseal.dns.records import RDATATYPES, name_text, question_name, record_text
from mailseal.dns.types import Answer, Question, Status
from mailseal.dns.zonefile import read_zone_file, read_zone_text
from mailseal.errors import DnsError

# Longest CNAME chain followed before giving up; BIND and Unbound stop near here.
MAX_CNAME_CHAIN: Final = 16
_WILDCARD: Final = dns.name.Name((b"*",))

_TypeMap = dict[dns.rdatatype.RdataType, dns.rdataset.Rdataset]


class ZoneResolver:
    """Answer questions from zone files only (RFC 1035 §5 master file format).

    Several files may hold several zones; their records are merged. Names are
    compared case-insensitively (RFC 4343). ``secure`` is always False: zone
    data is not validated. Implements both ``AsyncResolver`` and ``SyncResolver``.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]] = ()) -> None:
        self._data: dict[dns.name.Name, _TypeMap] = {}
        self._exists: set[dns.name.Name] = set()  # owners and all their ancestors
        self._sources: dict[dns.name.Name, str] = {}
        for path in paths:
            self.add_file(path)

    @classmethod
    def from_text(
        cls, text: str, origin: str | None = None, *, source: str = "<zone text>"
    ) -> ZoneResolver:
        """Build a resolver from zone text (tests); ``source`` names it in errors."""
        resolver = cls()
        resolver.add_text(text, origin, source=source)
        return resolver

    def add_file(self, path: str | os.PathLike[str], origin: str | None = None) -> None:
        """Load one master file; raise :class:`DnsError` naming ``file:line`` if it is bad."""
        self._absorb(read_zone_file(path, origin), os.fspath(path))

    def add_text(
        self, text: str, origin: str | None = None, *, source: str = "<zone text>"
    ) -> None:
        """Load zone text (``$INCLUDE`` not allowed); errors name ``source:line``."""
        self._absorb(read_zone_text(text, origin, source=source), source)

    async def ask(self, question: Question) -> Answer:
        """Answer one question from the loaded data; never raises for DNS outcomes."""
        return self.ask_sync(question)

    def ask_sync(self, question: Question) -> Answer:
        """Answer one question from the loaded data, following CNAMEs (RFC 1034 §4.3.2)."""
        try:
            asked = question_name(question.name)
        except ValueError as exc:
            # Such a name cannot exist in any zone: a definite "no", not a failure.
            return Answer(question, Status.NXDOMAIN, detail=str(exc))
        name = asked
        rdtype = RDATATYPES[question.rdtype]
        ttls: list[int] = []
        seen = {asked}
        for _ in range(MAX_CNAME_CHAIN + 1):
            types = self._find(name)
            if types is None:
                return self._negative(question, Status.NXDOMAIN, name, name != asked, ttls)
            rdataset = types.get(rdtype)
            if rdataset:
                records = tuple(record_text(rdata) for rdata in rdataset)
                return Answer(question, Status.OK, records, min([rdataset.ttl, *ttls]))
            cname = types.get(dns.rdatatype.CNAME) if rdtype != dns.rdatatype.CNAME else None
            if not cname:
                return self._negative(question, Status.NODATA, name, name != asked, ttls)
            ttls.append(cname.ttl)
            name = cname[0].target
            if name in seen:
                return Answer(question, Status.SERVFAIL, detail=f"CNAME loop at {name_text(name)}")
            seen.add(name)
        return Answer(
            question, Status.SERVFAIL, detail=f"CNAME chain longer than {MAX_CNAME_CHAIN}"
        )

    # -- lookup ------------------------------------------------------------

    def _find(self, name: dns.name.Name) -> _TypeMap | None:
        """Records at ``name`` ({} for an empty non-terminal), or None if it does not exist."""
        types = self._data.get(name)
        if types is not None:
            return types
        if name in self._exists:
            return {}
        # RFC 4592 §3.3.1: only the closest encloser's "*" child can stand in.
        encloser = name
        while encloser != dns.name.root and encloser not in self._exists:
            encloser = encloser.parent()
        wildcard = _WILDCARD.concatenate(encloser)
        if wildcard in self._exists:
            return self._data.get(wildcard, {})
        return None

    def _negative(
        self,
        question: Question,
        status: Status,
        name: dns.name.Name,
        via_cname: bool,
        ttls: list[int],
    ) -> Answer:
        """A negative answer whose TTL follows RFC 2308 §5 (SOA TTL capped by MINIMUM)."""
        soa_ttl = self._negative_ttl(name)
        ttl = min([*ttls, soa_ttl]) if soa_ttl is not None else 0
        where = f" (via CNAME to {name_text(name)})" if via_cname else ""
        if status is Status.NXDOMAIN:
            detail = f"no name {name_text(name)} in the zone files{where}"
        else:
            detail = f"no {question.rdtype.value} records at {name_text(name)}{where}"
        return Answer(question, status, ttl=ttl, detail=detail)

    def _negative_ttl(self, name: dns.name.Name) -> int | None:
        while True:
            soa = self._data.get(name, {}).get(dns.rdatatype.SOA)
            if soa:
                rdata = soa[0]
                assert isinstance(rdata, dns.rdtypes.ANY.SOA.SOA)
                return min(soa.ttl, rdata.minimum)
            if name == dns.name.root:
                return None
            name = name.parent()

    # -- loading -----------------------------------------------------------

    def _absorb(self, zone: dns.zone.Zone, source: str) -> None:
        """Merge one file's records into the resolver (several files may share a zone)."""
        for name, rdataset in zone.iterate_rdatasets():
            if rdataset.rdclass != dns.rdataclass.IN:
                continue
            types = self._data.setdefault(name, {})
            merged = types.get(rdataset.rdtype)
            if merged is None:
                merged = dns.rdataset.Rdataset(rdataset.rdclass, rdataset.rdtype, rdataset.covers)
                types[rdataset.rdtype] = merged
            for rdata in rdataset:
                merged.add(rdata, rdataset.ttl)  # keeps the smaller TTL across files
            cname = types.get(dns.rdatatype.CNAME)
            if cname is not None and (len(cname) > 1 or _has_regular_data(types)):
                other = self._sources.get(name, source)
                raise DnsError(
                    f"{source}: {name_text(name)}: CNAME and other records at one name "
                    f"(also in {other}; RFC 2181 §10.1 allows a CNAME only alone)"
                )
            self._sources.setdefault(name, source)
            while name not in self._exists:
                self._exists.add(name)
                if name == dns.name.root:
                    break
                name = name.parent()


def _has_regular_data(types: _TypeMap) -> bool:
    for rdtype, rdataset in types.items():
        if rdtype == dns.rdatatype.CNAME:
            continue
        kind = dns.node.NodeKind.classify_rdataset(rdataset)
        if kind == dns.node.NodeKind.REGULAR:
            return True
    return False
