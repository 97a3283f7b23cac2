"""The load generator's parts without a milter: messages, percentiles, answer checks."""

from __future__ import annotations

import pytest

from mailseal.bench.check import ResultCheck, SignatureCheck, delivered, dkim_results
from mailseal.bench.corpus import SIZE_BYTES, Corpus, make_message, raw_message, schedule
from mailseal.bench.stats import Latency, percentile
from mailseal.dkim.canon import Canon
from mailseal.dkim.keys import KeyType, generate_key
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dkim.verify import VerifyOptions
from mailseal.milter.client import MessageResult
from mailseal.milter.codec import milter_header_value
from mailseal.milter.messages import AddHeader, Continue, InsertHeader, Tempfail

NOW = 1_795_608_000


@pytest.mark.parametrize("cls", ["2k", "20k", "200k"])
def test_sizes_are_near_their_class(cls: str) -> None:
    msg = make_message(cls, "example.com", "bench@example.com")
    raw = raw_message(msg)
    assert len(raw) == msg.raw_size
    assert 0.9 * SIZE_BYTES[cls] < len(raw) < 1.1 * SIZE_BYTES[cls]
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert raw == raw_message(make_message(cls, "example.com", "bench@example.com"))


def test_mix_is_70_25_5_and_pools_vary() -> None:
    order = schedule("mix")
    assert (order.count("2k"), order.count("20k"), order.count("200k")) == (14, 5, 1)
    corpus = Corpus("mix", "example.com", "bench@example.com", messages=100)
    sizes = [corpus[i].size for i in range(100)]
    assert (sizes.count("2k"), sizes.count("20k"), sizes.count("200k")) == (70, 25, 5)
    assert corpus[0].headers != corpus[len(order)].headers  # another variant
    assert 12_000 < corpus.mean_size(100) < 22_000


def test_percentile_interpolates() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    lat = Latency.of([0.001 * i for i in range(1, 101)])
    assert (lat.p50, lat.p99, lat.max) == (50.5, 99.01, 100.0)


def test_authentication_results_parsing() -> None:
    value = (
        b"mx.example.com; dkim=pass (2048-bit key; unprotected) header.d=Example.COM\n"
        b'\theader.i=@example.com header.b="AbCd"; dkim=fail header.d=other.example'
    )
    assert dkim_results(value) == [("pass", "example.com"), ("fail", "other.example")]
    check = ResultCheck("example.com")
    msg = make_message("2k", "example.com", "bench@example.com")
    ok = MessageResult(Continue(), b"E", (AddHeader(b"Authentication-Results", value),))
    assert check(msg, ok, False, NOW) is None
    bad = MessageResult(
        Continue(),
        b"E",
        (AddHeader(b"Authentication-Results", b"x; dkim=fail header.d=example.com"),),
    )
    assert check(msg, bad, False, NOW) == "dkim=fail"
    assert check(msg, MessageResult(Tempfail(), b"N"), False, NOW) == "tempfail"


@pytest.mark.parametrize("leading_space", [False, True])
def test_signature_check_puts_the_message_back_together(leading_space: bool) -> None:
    key = generate_key(KeyType.ED25519)
    msg = make_message("2k", "example.com", "bench@example.com")
    spec = SignerSpec(
        key, "example.com", "mail", header_canon=Canon.SIMPLE, body_canon=Canon.SIMPLE
    )
    [field] = sign_message(raw_message(msg), [spec], NOW)
    value = milter_header_value(field.partition(b":")[2], leading_space=leading_space)
    result = MessageResult(Continue(), b"E", (InsertHeader(0, b"DKIM-Signature", value),))
    assert delivered(msg, result, leading_space).startswith(field + b"\r\n")
    check = SignatureCheck(key, "example.com", "mail", VerifyOptions())
    assert check(msg, result, leading_space, NOW) is None
    other = SignatureCheck(generate_key(KeyType.ED25519), "example.com", "mail", VerifyOptions())
    assert (other(msg, result, leading_space, NOW) or "").startswith("signature fail")
    unchecked = SignatureCheck(None, "example.com", "mail", VerifyOptions())
    assert unchecked(msg, result, leading_space, NOW) is None
    assert unchecked(msg, MessageResult(Continue(), b"E"), False, NOW) == "no DKIM-Signature added"
