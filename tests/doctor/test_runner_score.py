"""The doctor's shell (concurrent probes, one query per question, a deadline) and its score."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from mailseal.dmarc.psl import org_domain
from mailseal.dns.types import Answer, Question
from mailseal.dns.types import Status as DnsStatus
from mailseal.doctor.checks import CheckOptions, plan
from mailseal.doctor.findings import Finding, Status
from mailseal.doctor.runner import run_parts
from mailseal.doctor.score import DEFAULT_WEIGHT, MAX_SCORE, WEIGHTS, score
from mailseal.spf.lookup import client_address
from tests.doctor.domains import BROKEN, BROKEN_HELO, BROKEN_IP, GOOD, GOOD_HELO, GOOD_IP
from tests.doctor.helpers import check, resolver


class SlowZone:
    """The test zones, each answer after ``delay`` seconds; counts what is asked."""

    def __init__(self, delay: float) -> None:
        self.inner = resolver()
        self.delay = delay
        self.asked: Counter[tuple[str, str]] = Counter()

    async def ask(self, question: Question) -> Answer:
        self.asked[(question.name.lower(), question.rdtype.value)] += 1
        await asyncio.sleep(self.delay)
        return self.inner.ask_sync(question)


class Silent:
    """A DNS that never answers."""

    async def ask(self, question: Question) -> Answer:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def good_parts():  # type: ignore[no-untyped-def]
    options = CheckOptions(GOOD, client_address(GOOD_IP), GOOD_HELO, (), ("dnsbl.example",))
    return plan(options, org_domain)


def test_probes_run_concurrently_and_ask_each_question_once() -> None:
    dns = SlowZone(0.05)
    start = time.monotonic()
    result = asyncio.run(run_parts(good_parts(), dns, 10.0))
    elapsed = time.monotonic() - start
    assert result.reached
    asked = sum(dns.asked.values())
    assert asked >= 20
    assert max(dns.asked.values()) == 1, [k for k, n in dns.asked.items() if n > 1]
    # one after the other this would take asked * 0.05 s
    assert elapsed < asked * 0.05 / 3, (elapsed, asked)
    assert [f for f in result.findings if f.status is not Status.OK] == []


def test_the_deadline_ends_a_run_against_a_silent_dns() -> None:
    start = time.monotonic()
    result = asyncio.run(run_parts(good_parts(), Silent(), 0.3))
    assert time.monotonic() - start < 2.0
    assert not result.reached
    assert result.findings and {f.status for f in result.findings} == {Status.ERROR}
    assert "ran out of time" in result.findings[0].message


def test_answers_of_any_kind_mean_dns_was_reached() -> None:
    class Nx:
        async def ask(self, question: Question) -> Answer:
            return Answer(question, DnsStatus.NXDOMAIN)

    assert asyncio.run(run_parts(good_parts(), Nx(), 1.0)).reached

    class Timeout:
        async def ask(self, question: Question) -> Answer:
            return Answer(question, DnsStatus.TIMEOUT, detail="no answer from 192.0.2.53:53")

    down = asyncio.run(run_parts(good_parts(), Timeout(), 1.0))
    assert not down.reached and down.failure == "no answer from 192.0.2.53:53"


def test_every_check_id_has_a_weight() -> None:
    seen = set()
    for report in (
        check(GOOD, ip=GOOD_IP, helo=GOOD_HELO),
        check(BROKEN, ip=BROKEN_IP, helo=BROKEN_HELO),
        check("nowhere.example", ip="192.0.2.99", helo="x.example"),
    ):
        seen |= {f.check for f in report.findings}
    assert seen <= set(WEIGHTS), seen - set(WEIGHTS)
    for name, w in WEIGHTS.items():
        assert 0 < w.warn <= w.fail <= w.cap <= MAX_SCORE, name


def test_score_deductions_caps_and_clamp() -> None:
    findings = [
        Finding("dnsbl", Status.FAIL, "a", "x"),
        Finding("dnsbl", Status.FAIL, "b", "x"),
        Finding("dnsbl", Status.FAIL, "c", "x"),
        Finding("dnsbl", Status.FAIL, "d", "x"),
        Finding("spf.record", Status.ERROR, "dns failed"),
        Finding("spf.all", Status.WARN, "?all", "x"),
        Finding("mx", Status.OK, "fine"),
        Finding("not.in.table", Status.FAIL, "?", "x"),
    ]
    report = score("example.com", findings)
    assert [f.deduction for f in report.findings] == [
        1.0,
        1.0,
        1.0,
        0.0,
        0.0,
        0.5,
        0.0,
        DEFAULT_WEIGHT.fail,
    ]
    assert report.score == 10 - 3.0 - 0.5 - DEFAULT_WEIGHT.fail
    assert report.failed
    many = [Finding(name, Status.FAIL, name, "x") for name in WEIGHTS]
    assert score("example.com", many).score == 0.0
    clean = score(
        "example.com", [Finding("mx", Status.OK, "fine"), Finding("dnsbl", Status.ERROR, "?")]
    )
    assert clean.score == MAX_SCORE and not clean.failed


def test_json_shape() -> None:
    doc = check(BROKEN, ip=BROKEN_IP).to_json()
    assert set(doc) == {"domain", "score", "findings"}
    assert doc["domain"] == BROKEN and isinstance(doc["score"], float)
    for f in doc["findings"]:  # type: ignore[attr-defined]
        assert set(f) == {"check", "status", "message", "fix", "deduction"}
        assert f["status"] in ("ok", "warn", "fail", "error")
        assert isinstance(f["deduction"], float)
