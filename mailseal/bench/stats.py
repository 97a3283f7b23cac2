"""Latency percentiles and the summary of one benchmark run."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, interpolating linearly between ranks
    (numpy's default), 0.0 for no values."""
    if not ordered:
        return 0.0
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds from the first packet of a message to the milter's final reply."""

    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ordered = sorted(seconds)
        ms = [s * 1000.0 for s in ordered]
        mean = sum(ms) / len(ms) if ms else 0.0
        return cls(
            round(percentile(ms, 50), 3),
            round(percentile(ms, 95), 3),
            round(percentile(ms, 99), 3),
            round(ms[-1] if ms else 0.0, 3),
            round(mean, 3),
        )


@dataclass(slots=True)
class Summary:
    """What ``mailseal bench`` reports (and prints with ``--json``)."""

    socket: str
    mode: str  # "sign" | "verify"
    size: str
    protocol: int  # the version we offered, as Postfix's milter_protocol
    negotiated: int  # the version the milter answered
    messages: int  # asked for
    concurrency: int
    sent: int  # messages that got a final reply
    ok: int  # accepted and checked (or, without --key in sign mode, signed)
    errors: int
    error_kinds: dict[str, int]
    checked: bool  # signatures / results were checked against --key
    seconds: float  # wall time of the timed part (all connections open, first to last message)
    messages_per_second: float  # ok / seconds: a wrong answer never counts
    latency_ms: Latency
    mean_message_bytes: float
    client_cpu_ms: float  # this load generator's own CPU time per message (same machine)
    milter_flags: dict[str, int] = field(default_factory=dict)  # the milter's O reply

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def count_errors(kinds: Sequence[str]) -> dict[str, int]:
    return dict(sorted(Counter(kinds).items(), key=lambda kv: (-kv[1], kv[0])))


__all__ = ["Latency", "Summary", "count_errors", "percentile"]
