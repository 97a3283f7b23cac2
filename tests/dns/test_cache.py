"""AnswerCache: TTLs, negative and failure lifetimes, LRU bound, with a hand-moved clock."""

from __future__ import annotations

import pytest

from mailseal.dns.cache import MAX_NEGATIVE_TTL, MAX_TTL, AnswerCache
from mailseal.dns.types import Answer, Question, RdType, Status


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(name: str, status: Status = Status.OK, ttl: int = 60) -> Answer:
    records = ("x",) if status is Status.OK else ()
    return Answer(Question(name, RdType.TXT), status, records, ttl)


def test_hit_until_the_ttl_runs_out() -> None:
    clock = Clock()
    cache = AnswerCache(clock)
    cache.put(answer("a.example", ttl=60))
    clock.now = 59.9
    hit = cache.get(Question("a.example", RdType.TXT))
    assert hit is not None and hit.ttl == 1
    clock.now = 60
    assert cache.get(Question("a.example", RdType.TXT)) is None
    assert len(cache) == 0


def test_key_ignores_case_and_root_dot_but_not_type() -> None:
    cache = AnswerCache(Clock())
    cache.put(answer("a.example"))
    hit = cache.get(Question("A.Example.", RdType.TXT))
    assert hit is not None and hit.question == Question("A.Example.", RdType.TXT)
    assert cache.get(Question("a.example", RdType.MX)) is None


@pytest.mark.parametrize(
    ("status", "ttl", "lifetime"),
    [
        (Status.OK, 0, 0),
        (Status.OK, 10**6, MAX_TTL),
        (Status.NXDOMAIN, 30, 30),
        (Status.NODATA, 10**6, MAX_NEGATIVE_TTL),
        (Status.NXDOMAIN, 0, 0),
        (Status.SERVFAIL, 0, 2.0),
        (Status.TIMEOUT, 0, 2.0),
    ],
)
def test_lifetimes(status: Status, ttl: int, lifetime: float) -> None:
    clock = Clock()
    cache = AnswerCache(clock, failure_ttl=2.0)
    cache.put(answer("a.example", status, ttl))
    question = Question("a.example", RdType.TXT)
    if lifetime == 0:
        assert cache.get(question) is None
        return
    clock.now = lifetime - 0.01
    assert cache.get(question) is not None
    clock.now = lifetime
    assert cache.get(question) is None


def test_uncacheable_answer_replaces_a_cached_one() -> None:
    cache = AnswerCache(Clock())
    cache.put(answer("a.example", ttl=60))
    cache.put(answer("a.example", ttl=0))
    assert cache.get(Question("a.example", RdType.TXT)) is None


def test_least_recently_used_goes_first() -> None:
    cache = AnswerCache(Clock(), max_entries=2)
    cache.put(answer("a.example"))
    cache.put(answer("b.example"))
    assert cache.get(Question("a.example", RdType.TXT)) is not None  # a is now the newest
    cache.put(answer("c.example"))
    assert cache.get(Question("b.example", RdType.TXT)) is None
    assert cache.get(Question("a.example", RdType.TXT)) is not None
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        AnswerCache(Clock(), max_entries=0)
