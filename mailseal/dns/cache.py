"""A bounded, TTL-respecting cache of :class:`~mailseal.dns.types.Answer` values.

The clock is a parameter (seconds, monotonic), so tests move time by hand and
the cache itself reads no clock of its own.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from mailseal.dns.types import Answer, Question, RdType, Status

#: Entries kept before the least recently used is dropped.
DEFAULT_MAX_ENTRIES: Final = 10_000
#: Cap on positive TTLs: RFC 8767 §4 suggests a week; a day keeps key rotations visible.
MAX_TTL: Final = 86_400
#: Cap on negative TTLs: RFC 2308 §5 suggests one to three hours.
MAX_NEGATIVE_TTL: Final = 10_800
#: How long a SERVFAIL or TIMEOUT is remembered, so a dead server is not asked
#: again for every message of a burst (RFC 2308 §7.1 allows up to 5 minutes;
#: RFC 9520 §3.2 asks resolvers for at least 1 second).
DEFAULT_FAILURE_TTL: Final = 1.0

_Key = tuple[str, RdType]


def _key(question: Question) -> _Key:
    # Names compare case-insensitively (RFC 4343) and with or without the root dot.
    return question.name.rstrip(".").lower(), question.rdtype


class AnswerCache:
    """Least-recently-used answers, each kept no longer than its TTL.

    Positive answers live for their TTL, NXDOMAIN and NODATA for the negative
    TTL the resolver derived from the SOA (RFC 2308 §5), temporary failures
    for ``failure_ttl`` seconds. A TTL of 0 means "do not cache". Answers come
    back with the TTL that remains, as a caching resolver reports them.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        failure_ttl: float = DEFAULT_FAILURE_TTL,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max_entries = max_entries
        self._failure_ttl = failure_ttl
        self._entries: OrderedDict[_Key, tuple[float, Answer]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, question: Question) -> Answer | None:
        """Return a live cached answer to ``question`` (asked as given), or None."""
        key = _key(question)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, answer = entry
        left = expires - self._clock()
        if left <= 0:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        ttl = min(answer.ttl, math.ceil(left))
        return replace(answer, question=question, ttl=ttl)

    def put(self, answer: Answer) -> None:
        """Remember ``answer`` for as long as its status and TTL allow."""
        lifetime = self._lifetime(answer)
        key = _key(answer.question)
        if lifetime <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (self._clock() + lifetime, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def _lifetime(self, answer: Answer) -> float:
        if answer.status is Status.OK:
            return min(answer.ttl, MAX_TTL)
        if answer.status in (Status.NXDOMAIN, Status.NODATA):
            return min(answer.ttl, MAX_NEGATIVE_TTL)
        return self._failure_ttl
