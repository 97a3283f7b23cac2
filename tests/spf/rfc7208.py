"""The openspf RFC 7208 test suite as data: cases, and their DNS as zone text.

The suite's ``zonedata`` is read the way its own driver (pyspf's
``test/testspf.py``) reads it, so each case sees the DNS its authors meant:

- ``SPF`` records stand for ``TXT`` records too when the name has no ``TXT``
  entry at all (the suite's "auto-magic duplication"; ``TXT: NONE`` turns it
  off). They are also served as type-99 SPF records, which mailseal never asks for.
- A ``TIMEOUT`` entry makes every question about the name time out, except
  for the types of the records listed before it (pyspf's ``DNSLookup``).
- A record written as a list of strings (``SPF: [a, b]``) is one record with
  several character-strings; an empty list is a TXT record with no strings,
  which the master-file format cannot write: it becomes one empty string,
  which reads the same once the strings are joined (RFC 7208 §3.3).
- Names not listed do not exist. Strings are UTF-8 on the wire (the YAML's
  ``\\xEF`` is the character U+00EF, sent as two bytes, as pyspf does).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import dns.name

VECTORS: Final = Path(__file__).resolve().parent.parent / "vectors" / "spf"
SUITE_JSON: Final = VECTORS / "rfc7208-tests.json"
TTL: Final = 300
#: Every record type the suite uses, and the ones mailseal can be asked about.
ALL_TYPES: Final = frozenset({"A", "AAAA", "MX", "TXT", "PTR", "CNAME", "SPF", "NS", "SOA"})


@dataclass(frozen=True)
class Case:
    """One test: the SMTP inputs and the result(s) the suite accepts."""

    id: str
    scenario: int  # index of the YAML document
    spec: str
    helo: str
    host: str
    mailfrom: str
    results: tuple[str, ...]  # acceptable results, the preferred one first
    explanation: str | None  # None: not checked; "DEFAULT": the implementation's own


@dataclass
class Name:
    """The DNS data at one owner name."""

    records: list[tuple[str, str]] = field(default_factory=list)  # (type, master-file rdata)
    timeout_except: frozenset[str] | None = None  # types answered when the rest time out


@dataclass(frozen=True)
class Scenario:
    index: int
    description: str
    names: dict[str, Name]
    cases: tuple[Case, ...]

    @property
    def has_timeouts(self) -> bool:
        """True when a zone file cannot hold this scenario's DNS (a name times out)."""
        return any(n.timeout_except is not None for n in self.names.values())

    def zone_text(self) -> str:
        """The scenario's records as an RFC 1035 master file with absolute names."""
        lines = [f"; RFC 7208 test suite, scenario {self.index}: {self.description}"]
        for owner, data in self.names.items():
            for rdtype, rdata in data.records:
                lines.append(f"{owner_text(owner)} {TTL} IN {rdtype} {rdata}")
        return "\n".join(lines) + "\n"

    def drops(self) -> dict[str, frozenset[str]]:
        """Owner (lower-case, no final dot) -> the record types to leave unanswered."""
        out = {}
        for owner, data in self.names.items():
            if data.timeout_except is not None:
                out[owner.rstrip(".").lower()] = ALL_TYPES - data.timeout_except
        return out


def load() -> list[Scenario]:
    documents = json.loads(SUITE_JSON.read_text(encoding="ascii"))
    return [_scenario(index, doc) for index, doc in enumerate(documents)]


def cases() -> Iterator[Case]:
    for scenario in load():
        yield from scenario.cases


def _scenario(index: int, doc: dict[str, object]) -> Scenario:
    tests = doc["tests"]
    zonedata = doc["zonedata"]
    assert isinstance(tests, dict) and isinstance(zonedata, dict)
    found = []
    for case_id, test in tests.items():
        result = test["result"]
        results = tuple(result) if isinstance(result, list) else (result,)
        found.append(
            Case(
                id=case_id,
                scenario=index,
                spec=str(test.get("spec", "")),
                helo=test["helo"],
                host=test["host"],
                mailfrom=test["mailfrom"],
                results=results,
                explanation=test.get("explanation"),
            )
        )
    names = {owner: _name(entries) for owner, entries in zonedata.items()}
    return Scenario(index, str(doc.get("description", "")), names, tuple(found))


def _name(entries: Sequence[object]) -> Name:
    data = Name()
    has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
    generated: list[tuple[str, str]] = []
    answered: set[str] = set()
    for entry in entries:
        if entry == "TIMEOUT":
            data.timeout_except = frozenset(answered)
            break
        assert isinstance(entry, dict) and len(entry) == 1, entry
        ((rdtype, value),) = entry.items()
        if value == "NONE":
            continue
        data.records.append((rdtype, rdata_text(rdtype, value)))
        answered.add(rdtype)
        if rdtype == "SPF" and not has_txt:
            generated.append(("TXT", rdata_text("TXT", value)))
    # pyspf's driver yields the generated TXT records after all others, so a
    # TIMEOUT entry that cut the list short leaves TXT questions timing out.
    if data.timeout_except is None:
        data.records.extend(generated)
    return data


def rdata_text(rdtype: str, value: object) -> str:
    """One record's data in master-file syntax."""
    if rdtype in ("TXT", "SPF"):
        strings = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        return " ".join(_quoted(s) for s in strings) if strings else '""'
    if rdtype == "MX":
        assert isinstance(value, list)
        preference, exchange = value
        return f"{preference} {_absolute(exchange)}"
    if rdtype in ("PTR", "CNAME"):
        assert isinstance(value, str)
        return _absolute(value)
    assert isinstance(value, str)
    return value


def _quoted(text: str) -> str:
    """Character-strings of at most 255 octets, escaped for a master file."""
    data = text.encode("utf-8")
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    out = []
    for chunk in chunks:
        escaped = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:03d}" for b in chunk
        )
        out.append(f'"{escaped}"')
    return " ".join(out)


def _absolute(name: str) -> str:
    return "." if name in ("", ".") else owner_text(name)


def owner_text(name: str) -> str:
    """A name as master-file text: absolute, with special characters escaped."""
    return str(dns.name.from_text(name if name.endswith(".") else name + ".").to_text())
