"""The one bridge between core generators that ask DNS questions and a resolver."""

from __future__ import annotations

from collections.abc import Generator
from typing import Protocol, TypeVar

from mailseal.dns.types import Answer, Question

T = TypeVar("T")


class AsyncResolver(Protocol):
    async def ask(self, question: Question) -> Answer:
        """Answer one question. Never raises for DNS failures: they become statuses."""
        ...


class SyncResolver(Protocol):
    def ask_sync(self, question: Question) -> Answer:
        """Answer one question synchronously (static zones). Never raises for DNS failures."""
        ...


async def drive(gen: Generator[Question, Answer, T], resolver: AsyncResolver) -> T:
    """Run a question-yielding generator to its result, answering through ``resolver``."""
    try:
        question = next(gen)
        while True:
            question = gen.send(await resolver.ask(question))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def drive_sync(gen: Generator[Question, Answer, T], resolver: SyncResolver) -> T:
    """Run a question-yielding generator with a synchronous resolver (tests, static zones)."""
    try:
        question = next(gen)
        while True:
            question = gen.send(resolver.ask_sync(question))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
