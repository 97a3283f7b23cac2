"""check_host() of RFC 7208 (§4 to §6) as a generator that asks DNS questions.

:func:`check_host` yields :class:`~mailseal.dns.types.Question` values and is
sent the :class:`~mailseal.dns.types.Answer` to each; it returns an
:class:`~mailseal.spf.results.SpfVerdict`. It counts DNS-querying terms and
void lookups itself (§4.6.4): the resolver knows nothing of SPF. No clock
inside: ``now`` (for ``%{t}`` in explanations) is passed in.

Limits enforced (§4.6.4), all in :class:`SpfLimits`:

- at most 10 terms that query DNS (``include``, ``a``, ``mx``, ``ptr``,
  ``exists``, ``redirect=``) per check, includes and redirects counted in;
  counted as they are evaluated, so terms after a match cost nothing;
- at most 2 void lookups: terms whose query found no name (NXDOMAIN) or no
  records. One term counts at most once (the limit is on "terms"); the
  address lookups of the names an ``mx`` or ``ptr`` term finds, the
  ``%{p}`` macro and ``exp=`` are not counted;
- an ``mx`` term whose name has more than 10 MX records is a permerror;
- only the first 10 PTR names are used (by ``ptr`` and ``%{p}``).

DNS failures (SERVFAIL, timeout) end the check in temperror, except in the
``ptr`` mechanism ("fails to match"), while validating a PTR name ("skipped"),
for ``%{p}`` ("unknown") and for ``exp=`` (no explanation), as §5.5, §7.3
and §6.2 say.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Final

from mailseal.dns.types import Answer, Question, RdType, Status
from mailseal.spf.lookup import (
    IPAddress,
    address_type,
    addresses,
    client_address,
    domain_problem,
    is_subdomain,
    name_problem,
    ptr_names,
    question,
    to_ascii,
    validated_name,
    validates,
)
from mailseal.spf.macros import (
    MacroContext,
    MacroString,
    MacroSyntaxError,
    expand,
    expand_name,
    parse_macro_string,
)
from mailseal.spf.record import (
    Kind,
    Mechanism,
    Modifier,
    SpfSyntaxError,
    parse_record,
    spf_records,
)
from mailseal.spf.results import SpfResult, SpfVerdict

SpfCheck = Generator[Question, Answer, SpfVerdict]
#: Includes and redirects nested deeper than this are a permerror whatever the
#: lookup limit is set to (each level is a nested generator).
MAX_DEPTH: Final = 64


@dataclass(frozen=True, slots=True)
class SpfLimits:
    """The processing limits of RFC 7208 §4.6.4 (defaults are the RFC's)."""

    lookups: int = 10  # terms that query DNS, per check ("MUST limit ... to at most 10")
    void_lookups: int = 2  # terms whose query found nothing ("SHOULD limit ... to two")
    mx_names: int = 10  # MX records one mx term may look at ("MUST produce a permerror")
    ptr_names: int = 10  # PTR names used ("all records other than the first 10 MUST be ignored")


DEFAULT_LIMITS: Final = SpfLimits()


def check_host(
    ip: str | IPAddress,
    domain: str,
    sender: str,
    helo: str | None = None,
    *,
    receiver: str = "unknown",
    now: int = 0,
    limits: SpfLimits = DEFAULT_LIMITS,
) -> SpfCheck:
    """Evaluate ``domain``'s SPF policy for a client ``ip`` (RFC 7208 §4).

    ``sender`` is the identity checked (``local@domain``; a sender without a
    local-part is ``postmaster@domain``, §4.3), ``helo`` the HELO/EHLO name
    for ``%{h}``, ``receiver`` this host's name for ``%{r}`` and ``now`` the
    time for ``%{t}`` (both only in explanations). Raises ValueError only for
    an ``ip`` that is not an IP address.
    """
    address = client_address(ip)
    try:
        name = to_ascii(domain)
    except ValueError as exc:
        return SpfVerdict(SpfResult.NONE, domain.lower(), f"no SPF check: {exc} (RFC 7208 §4.3)")
    problem = domain_problem(name)
    if problem is not None:
        # "If the <domain> is malformed ... or is not a multi-label domain
        # name ... check_host() immediately returns the result "none"." (§4.3)
        reason = f"no SPF check: {domain!r} is {_article(problem)} (RFC 7208 §4.3)"
        return SpfVerdict(SpfResult.NONE, name, reason)
    state = _Check(address, _sender(sender, name), helo, receiver, now, limits)
    try:
        outcome = yield from state.evaluate(name, top=True)
    except _Stop as stop:
        return state.verdict(name, stop.result, stop.reason)
    explanation = None
    if outcome.result is SpfResult.FAIL and outcome.exp is not None:
        # The explanation is fetched only now, for the final result, from the
        # record that gave it: "exp= from the <target-name> MUST NOT be used"
        # for includes, "exp= from the original domain MUST NOT be used" after
        # a redirect (§6.2).
        explanation = yield from state.explain(*outcome.exp)
    return state.verdict(name, outcome.result, outcome.reason, outcome.mechanism, explanation)


def check_mailfrom(
    ip: str | IPAddress,
    sender: str,
    helo: str | None = None,
    *,
    receiver: str = "unknown",
    now: int = 0,
    limits: SpfLimits = DEFAULT_LIMITS,
) -> SpfCheck:
    """Check the MAIL FROM identity (RFC 7208 §2.4).

    The domain is the part after the last ``@``. The null sender (``""``) is
    checked as ``postmaster@HELO``: "When the reverse-path is null, this
    document defines the "MAIL FROM" identity to be the mailbox composed of
    the local-part "postmaster" and the "HELO" identity." With no HELO name
    there is nothing to check: the result is none.
    """
    if not sender:
        if not helo:
            return SpfVerdict(SpfResult.NONE, "", "null sender and no HELO name: nothing to check")
        return (
            yield from check_host(
                ip, helo, f"postmaster@{helo}", helo, receiver=receiver, now=now, limits=limits
            )
        )
    _, at, domain = sender.rpartition("@")
    return (
        yield from check_host(
            ip, domain if at else sender, sender, helo, receiver=receiver, now=now, limits=limits
        )
    )


def check_helo(
    ip: str | IPAddress,
    helo: str,
    *,
    receiver: str = "unknown",
    now: int = 0,
    limits: SpfLimits = DEFAULT_LIMITS,
) -> SpfCheck:
    """Check the HELO identity (RFC 7208 §2.3), as ``postmaster@HELO`` (§4.3)."""
    return (
        yield from check_host(
            ip, helo, f"postmaster@{helo}", helo, receiver=receiver, now=now, limits=limits
        )
    )


def _sender(sender: str, domain: str) -> str:
    """<sender> as the macros see it: "postmaster" stands in for a missing local-part (§4.3)."""
    local, at, sender_domain = sender.rpartition("@")
    if not at:
        local, sender_domain = "", sender or domain
    return f"{local or 'postmaster'}@{sender_domain}"


def _article(problem: str) -> str:
    return problem if problem.startswith("not ") else f"malformed ({problem})"


class _Stop(Exception):
    """Ends the whole check in temperror or permerror; caught in :func:`check_host`."""

    def __init__(self, result: SpfResult, reason: str) -> None:
        super().__init__(reason)
        self.result, self.reason = result, reason


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What evaluating one domain's record gave (before any explanation)."""

    result: SpfResult
    reason: str
    mechanism: str | None = None
    exp: tuple[MacroString, str] | None = None  # the deciding record's exp= and its domain


class _Check:
    """The state of one check_host() call: the inputs and the running counts."""

    def __init__(
        self,
        ip: IPAddress,
        sender: str,
        helo: str | None,
        receiver: str,
        now: int,
        limits: SpfLimits,
    ) -> None:
        self.ip, self.sender, self.limits = ip, sender, limits
        self.helo = helo if helo is not None else "unknown"
        self.receiver, self.now = receiver, now
        self.lookups = 0
        self.voids = 0
        self.record: str | None = None
        self._validated: dict[str, str] = {}
        self._path: list[str] = []  # the include / redirect terms being evaluated

    def verdict(
        self,
        domain: str,
        result: SpfResult,
        reason: str,
        mechanism: str | None = None,
        explanation: str | None = None,
    ) -> SpfVerdict:
        return SpfVerdict(
            result=result,
            domain=domain,
            reason=reason,
            mechanism=mechanism,
            explanation=explanation,
            lookups=self.lookups,
            void_lookups=self.voids,
            record=self.record,
        )

    # -- records (§4.4 - §4.7) --------------------------------------------

    def evaluate(self, domain: str, top: bool = False) -> Generator[Question, Answer, _Outcome]:
        """check_host() for one domain: look up (§4.4), select (§4.5), evaluate (§4.6)."""
        answer = yield question(domain, RdType.TXT)
        self._no_failure(answer, f"TXT query for {domain}")
        found = spf_records(answer.records) if answer.status is Status.OK else []
        if not found:
            what = "no such domain" if answer.status is Status.NXDOMAIN else "no SPF record"
            return _Outcome(SpfResult.NONE, f"{what} at {domain}")
        if len(found) > 1:
            # "If the resultant record set includes more than one record,
            # check_host() produces the "permerror" result." (§4.5)
            raise self._stop(
                SpfResult.PERMERROR,
                f"{domain} publishes {len(found)} SPF records; there must be one (RFC 7208 §4.5)",
            )
        if top:
            self.record = found[0]
        try:
            record = parse_record(found[0])
        except SpfSyntaxError as exc:
            raise self._stop(SpfResult.PERMERROR, f"{domain}: {exc}") from None
        for mechanism in record.mechanisms:
            if (yield from self._matches(mechanism, domain)):
                exp = (record.explanation.value, domain) if record.explanation else None
                reason = f"{domain}: matched {mechanism.text}"
                return _Outcome(mechanism.qualifier.result, reason, mechanism.text, exp)
        redirect = record.effective_redirect
        if redirect is not None:
            return (yield from self._redirect(redirect, domain))
        # "If none of the mechanisms match and there is no "redirect"
        # modifier, then check_host() returns a result of "neutral"." (§4.7)
        return _Outcome(SpfResult.NEUTRAL, f"{domain}: no mechanism matched (default neutral)")

    def _redirect(self, modifier: Modifier, domain: str) -> Generator[Question, Answer, _Outcome]:
        """redirect= (§6.1): the result is the target's, and its exp= applies, not ours."""
        self._count(modifier.text)
        target = yield from self._target(modifier.value, domain)
        problem = domain_problem(target)
        if problem is not None:
            reason = f"{modifier.text}: {target!r} is {_article(problem)} (RFC 7208 §6.1)"
            raise self._stop(SpfResult.PERMERROR, reason)
        outcome = yield from self._within(modifier.text, self.evaluate(target))
        if outcome.result is SpfResult.NONE:
            # "if no SPF record is found, or if the <target-name> is malformed,
            # the result is a "permerror" rather than "none"." (§6.1)
            raise self._stop(SpfResult.PERMERROR, f"{modifier.text}: {outcome.reason}")
        return outcome

    # -- mechanisms (§5) ---------------------------------------------------

    def _matches(self, mechanism: Mechanism, domain: str) -> Generator[Question, Answer, bool]:
        kind = mechanism.kind
        if kind is Kind.ALL:
            return True
        if kind in (Kind.IP4, Kind.IP6):
            assert mechanism.network is not None
            # An IPv4 client never matches ip6 (IPv4-mapped ones are IPv4, §5).
            return mechanism.network.version == self.ip.version and self.ip in mechanism.network
        self._count(mechanism.text)
        target = yield from self._target(mechanism.target, domain)
        if kind is Kind.INCLUDE:
            return (yield from self._include(mechanism, target))
        if name_problem(target) is not None:
            # A target no query can be made for matches nothing (§4.8, and
            # the suite's invalid-domain-* cases accept this reading).
            return False
        if kind is Kind.A:
            return (yield from self._a(mechanism, target, mechanism.text))
        if kind is Kind.MX:
            return (yield from self._mx(mechanism, target))
        if kind is Kind.PTR:
            return (yield from self._ptr(mechanism, target))
        return (yield from self._exists(mechanism, target))

    def _include(self, mechanism: Mechanism, target: str) -> Generator[Question, Answer, bool]:
        """include (§5.2): matches on the target's pass; none there is a permerror."""
        problem = domain_problem(target)
        if problem is not None:
            reason = f"{mechanism.text}: {target!r} is {_article(problem)} (RFC 7208 §5.2)"
            raise self._stop(SpfResult.PERMERROR, reason)
        outcome = yield from self._within(mechanism.text, self.evaluate(target))
        if outcome.result is SpfResult.NONE:
            raise self._stop(
                SpfResult.PERMERROR,
                f"{mechanism.text}: {outcome.reason} (an include needs an SPF record, §5.2)",
            )
        # pass matches; fail, softfail and neutral do not (temperror and
        # permerror have already ended the check through _Stop).
        return outcome.result is SpfResult.PASS

    def _a(self, mechanism: Mechanism, name: str, term: str) -> Generator[Question, Answer, bool]:
        """a (§5.3): any A (IPv4 client) or AAAA (IPv6) record of ``name`` within the CIDR."""
        answer = yield question(name, address_type(self.ip))
        self._no_failure(answer, f"{term}: {answer.question.rdtype.value} query for {name}")
        if not answer.ok:
            self._void(term, answer)
            return False
        return self._in_prefix(addresses(answer), mechanism)

    def _mx(self, mechanism: Mechanism, name: str) -> Generator[Question, Answer, bool]:
        """mx (§5.4): the addresses of ``name``'s MX hosts; no implicit MX (§5.4)."""
        term = mechanism.text
        answer = yield question(name, RdType.MX)
        self._no_failure(answer, f"{term}: MX query for {name}")
        if not answer.ok:
            self._void(term, answer)
            return False
        exchanges = []
        for record in answer.records:
            exchange = record.partition(" ")[2].strip()
            if exchange and exchange != ".":  # a null MX (RFC 7505) names no host
                exchanges.append(exchange)
        if len(exchanges) > self.limits.mx_names:
            raise self._stop(
                SpfResult.PERMERROR,
                f"{term}: {name} has {len(exchanges)} MX records; an mx mechanism may look at "
                f"{self.limits.mx_names} (RFC 7208 §4.6.4)",
            )
        rdtype = address_type(self.ip)
        for host in dict.fromkeys(exchanges):
            reply = yield question(host, rdtype)
            self._no_failure(reply, f"{term}: {rdtype.value} query for MX host {host}")
            if self._in_prefix(addresses(reply), mechanism):
                return True
        return False

    def _ptr(self, mechanism: Mechanism, target: str) -> Generator[Question, Answer, bool]:
        """ptr (§5.5): a validated PTR name of the client at or below ``target``."""
        answer, names = yield from ptr_names(self.ip, self.limits.ptr_names)
        if answer.status.is_temporary:
            return (
                False  # "If a DNS error occurs while doing the PTR RR lookup, ... fails to match"
            )
        if not answer.ok:
            self._void(mechanism.text, answer)
            return False
        for name in names:
            # Only names that would match need validating; others cost no query.
            if is_subdomain(name, target) and (yield from validates(name, self.ip)):
                return True
        return False

    def _exists(self, mechanism: Mechanism, name: str) -> Generator[Question, Answer, bool]:
        """exists (§5.7): any A record at ``name``, whatever the client's IP version."""
        answer = yield question(name, RdType.A)
        self._no_failure(answer, f"{mechanism.text}: A query for {name}")
        if not answer.ok:
            self._void(mechanism.text, answer)
            return False
        return True

    def _in_prefix(self, found: list[IPAddress], mechanism: Mechanism) -> bool:
        """Whether the client is within the a/mx CIDR of any found address (§5.3)."""
        bits = 32 if self.ip.version == 4 else 128
        prefix = mechanism.cidr4 if self.ip.version == 4 else mechanism.cidr6
        shift = bits - prefix
        client = int(self.ip) >> shift
        return any(a.version == self.ip.version and int(a) >> shift == client for a in found)

    # -- explanation (§6.2) --------------------------------------------------

    def explain(self, spec: MacroString, domain: str) -> Generator[Question, Answer, str | None]:
        """The expanded exp= text, or None when it cannot be had (§6.2).

        "If there are any DNS processing errors (any RCODE other than 0), or
        if no records are returned, or if more than one record is returned,
        or if there are syntax errors in the explanation string, then proceed
        as if no "exp" modifier was given." Not counted against any limit.
        """
        target = yield from self._target(spec, domain)
        if name_problem(target) is not None:
            return None
        answer = yield question(target, RdType.TXT)
        if answer.status is not Status.OK or len(answer.records) != 1:
            return None
        try:
            text = parse_macro_string(answer.records[0], explanation=True)
        except MacroSyntaxError:
            return None  # includes non-ASCII text (§6.2: "MUST be only US-ASCII")
        validated = (yield from self._validated_name(domain)) if text.uses("p") else "unknown"
        return expand(text, self._context(domain, validated)) or None

    # -- helpers -------------------------------------------------------------

    def _target(self, spec: MacroString | None, domain: str) -> Generator[Question, Answer, str]:
        """The <target-name> of a term: its expanded domain-spec, or the current domain (§4.8)."""
        if spec is None:
            return domain
        validated = (yield from self._validated_name(domain)) if spec.uses("p") else "unknown"
        return expand_name(spec, self._context(domain, validated))

    def _validated_name(self, domain: str) -> Generator[Question, Answer, str]:
        """%{p} for ``domain`` (its preference depends on the domain), asked for once."""
        if domain not in self._validated:
            self._validated[domain] = yield from validated_name(
                self.ip, domain, self.limits.ptr_names
            )
        return self._validated[domain]

    def _context(self, domain: str, validated: str = "unknown") -> MacroContext:
        return MacroContext(
            sender=self.sender,
            domain=domain,
            ip=self.ip,
            helo=self.helo,
            validated=validated,
            receiver=self.receiver,
            now=self.now,
        )

    def _within(
        self, term: str, inner: Generator[Question, Answer, _Outcome]
    ) -> Generator[Question, Answer, _Outcome]:
        """Run a nested evaluation; errors inside it say they came through ``term``."""
        if len(self._path) >= MAX_DEPTH:
            raise self._stop(SpfResult.PERMERROR, f"{term}: nested more than {MAX_DEPTH} deep")
        self._path.append(term)
        try:
            return (yield from inner)
        finally:
            self._path.pop()

    def _stop(self, result: SpfResult, reason: str) -> _Stop:
        """An error ending the check, saying which include/redirect chain it came through."""
        if self._path:
            chain = self._path if len(self._path) <= 4 else [*self._path[:2], "...", self._path[-1]]
            reason = f"{reason} (via {' > '.join(chain)})"
        return _Stop(result, reason)

    def _count(self, term: str) -> None:
        """Count a DNS-querying term (§4.6.4); one past the limit is a permerror."""
        self.lookups += 1
        if self.lookups > self.limits.lookups:
            raise self._stop(
                SpfResult.PERMERROR,
                f"{term}: more than {self.limits.lookups} DNS-querying terms (include, a, mx, "
                f"ptr, exists, redirect; RFC 7208 §4.6.4)",
            )

    def _void(self, term: str, answer: Answer) -> None:
        """Count a term whose query found nothing (§4.6.4 "void lookups")."""
        self.voids += 1
        if self.voids > self.limits.void_lookups:
            what = "no such name" if answer.status is Status.NXDOMAIN else "no records"
            raise self._stop(
                SpfResult.PERMERROR,
                f"{term}: {answer.question.name}: {what}, which makes more than "
                f"{self.limits.void_lookups} void lookups (RFC 7208 §4.6.4)",
            )

    def _no_failure(self, answer: Answer, what: str) -> None:
        """A failed query ends the check in temperror (§4.4, §5)."""
        if answer.status.is_temporary:
            detail = f": {answer.detail}" if answer.detail else ""
            raise self._stop(SpfResult.TEMPERROR, f"{what}: {answer.status.value}{detail}")
