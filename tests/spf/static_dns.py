"""A static resolver for engine tests: answers from a dict and records every question.

Names map to ``{"TXT": [...], "A": [...]}``; a listed name without the asked
type is NODATA, an unlisted one NXDOMAIN (as in mailauth's test helper, the two
stay apart). ``fail`` maps ``(name, type)`` or ``name`` to a failure status.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import TypeVar

from mailseal.dns.drive import drive_sync
from mailseal.dns.types import Answer, Question, RdType, Status

T = TypeVar("T")


class StaticDns:
    def __init__(
        self,
        data: Mapping[str, Mapping[str, Sequence[str]]],
        fail: Mapping[str | tuple[str, str], Status] | None = None,
    ) -> None:
        self.data = {name.lower().rstrip("."): dict(types) for name, types in data.items()}
        self.fail = dict(fail or {})
        self.asked: list[tuple[str, str]] = []

    def ask_sync(self, question: Question) -> Answer:
        name = question.name.lower().rstrip(".")
        rdtype = question.rdtype.value
        self.asked.append((name, rdtype))
        status = self.fail.get((name, rdtype), self.fail.get(name))
        if status is not None:
            return Answer(question, status, detail="static failure")
        types = self.data.get(name)
        if types is None:
            return Answer(question, Status.NXDOMAIN)
        records = tuple(types.get(rdtype, ()))
        return Answer(question, Status.OK if records else Status.NODATA, records)

    def run(self, gen: Generator[Question, Answer, T]) -> T:
        return drive_sync(gen, self)

    def asked_types(self) -> set[str]:
        return {rdtype for _, rdtype in self.asked}


def record(text: str) -> dict[str, list[str]]:
    """Shorthand: a name whose only data is one TXT record."""
    return {"TXT": [text]}


__all__ = ["RdType", "StaticDns", "Status", "record"]
