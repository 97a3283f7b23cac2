"""Run the doctor's probes (the I/O shell): all at once, each question asked once, in time.

Every probe of every part runs as its own task, so independent questions are
in flight together and the whole check takes about as long as its longest
chain of dependent questions. Answers are kept for the run (failures too,
unlike the resolver's short failure cache), so the SPF engine, the DMARC
linter and the DKIM probes asking the same name cost one query. A deadline of
:data:`BUDGET_FACTOR` times the DNS timeout bounds the run: questions asked
after it are answered as timeouts at once, so checks still end with findings
("could not look up ...") instead of hanging.

"DNS cannot be reached at all" is told apart from "some lookups failed": the
run remembers whether any question got an answer other than a timeout
(NXDOMAIN, SERVFAIL and REFUSED are answers: a server was there).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from mailseal.dns.drive import AsyncResolver, drive
from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.doctor.findings import Findings, Part

#: The whole run may take this many DNS timeouts: one for the first round of
#: questions, one for what follows from their answers.
BUDGET_FACTOR: Final = 2.0

_Key = tuple[str, RdType]


class RunResolver:
    """Answer each distinct question once per run, and nothing after the deadline."""

    def __init__(self, resolver: AsyncResolver, budget: float) -> None:
        self.resolver = resolver
        self.budget = budget
        self.deadline = time.monotonic() + budget
        self.reached = False  # some question got a real answer (not a timeout)
        self.failure = ""  # the first timeout's detail, for "cannot reach DNS"
        self.asked = 0
        self._tasks: dict[_Key, asyncio.Task[Answer]] = {}

    async def ask(self, question: Question) -> Answer:
        key = (question.name.rstrip(".").lower(), question.rdtype)
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._ask(question))
            self._tasks[key] = task
        answer = await asyncio.shield(task)
        return answer if answer.question == question else replace(answer, question=question)

    async def _ask(self, question: Question) -> Answer:
        left = self.deadline - time.monotonic()
        if left > 0:
            self.asked += 1
            try:
                async with asyncio.timeout(left):
                    answer = await self.resolver.ask(question)
            except TimeoutError:
                pass
            else:
                if answer.status is Status.TIMEOUT:
                    self.failure = self.failure or answer.detail
                else:
                    self.reached = True
                return answer
        detail = f"the check ran out of time ({self.budget:g} s)"
        return Answer(question, Status.TIMEOUT, detail=detail)


@dataclass(frozen=True, slots=True)
class RunResult:
    """The findings of a run, in part order, and whether DNS was there at all."""

    findings: Findings
    reached: bool
    failure: str
    asked: int


async def run_parts(parts: Sequence[Part], resolver: AsyncResolver, budget: float) -> RunResult:
    """Drive every probe concurrently through one per-run cache; combine each part."""
    shared = RunResolver(resolver, budget)

    async def run_part(part: Part) -> Findings:
        results = await asyncio.gather(*(drive(probe, shared) for probe in part.probes))
        return part.combine(list(results))

    per_part = await asyncio.gather(*(run_part(p) for p in parts))
    findings = [f for part in per_part for f in part]
    return RunResult(findings, shared.reached or shared.asked == 0, shared.failure, shared.asked)


__all__ = ["BUDGET_FACTOR", "RunResolver", "RunResult", "run_parts"]
