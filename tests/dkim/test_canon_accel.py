"""The optional C accelerator (``mailseal.dkim._canon``) against the pure-Python path.

The C ``relaxed_segment`` must give exactly the output of ``_relaxed_segment_py``
on any bytes, and ``BodyCanonicalizer`` must give the same output with either one
for any chunking. Where the extension was not built (no C compiler or Python
headers when mailseal was installed) these tests are skipped with that reason.
"""

from __future__ import annotations

import importlib
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailseal.dkim import canon
from mailseal.dkim.canon import BodyCanonicalizer, Canon

ROOT = Path(__file__).resolve().parent.parent.parent


def _load() -> ModuleType | None:
    try:
        return importlib.import_module("mailseal.dkim._canon")
    except ImportError:
        return None


_canon = _load()
needs_c = pytest.mark.skipif(
    _canon is None,
    reason="C accelerator not built: no compiler (or no Python headers) when mailseal "
    "was installed; the pure-Python path is in use",
)
Segment = Callable[[bytes], bytes]


def c_segment() -> Segment:
    assert _canon is not None
    fn: Segment = _canon.relaxed_segment
    return fn


py_segment: Segment = canon._relaxed_segment_py

# --- inputs: arbitrary bytes, and tokens that make WSP runs, line ends, NUL, high bytes ---

TOKENS = [
    b" ", b"\t", b"\r", b"\n", b"\r\n", b" \r\n", b"\t\r\n", b" \r", b" \n", b"\r\r\n",
    b"\0", b"\x80", b"\xa0", b"\xff", b"\x0b", b"\x0c", b"x", b"word", b"  ", b"\t \t",
]  # fmt: skip

wsp_runs = st.builds(
    lambda unit, k: unit * k, st.sampled_from([b" ", b"\t", b" \t", b"\t "]), st.integers(1, 200)
)
segments = st.one_of(
    st.binary(max_size=400),
    st.lists(st.one_of(st.sampled_from(TOKENS), wsp_runs), max_size=120).map(b"".join),
    # Plain text with an occasional change, so that the fast path skips whole blocks.
    st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b" ", b"x")),
            st.sampled_from([b" ", b" ", b" ", b"  ", b" \r\n", b"\r\n", b"\t"]),
        ),
        max_size=60,
    ).map(b"".join),
)


# --- the segment function ----------------------------------------------------------------


@needs_c
@settings(max_examples=2000)
@given(seg=segments)
@example(seg=b"")
@example(seg=b" ")
@example(seg=b"\t")
@example(seg=b" \r")
@example(seg=b" \r\n")
@example(seg=b"x" * 15 + b" \r\n")
@example(seg=b"x" * 16 + b" \r\n")
@example(seg=b"x" * 15 + b" \r" + b"y" * 20)
@example(seg=b"\0 \0  \0\t\xff \r\n\xff")
def test_c_segment_equals_python(seg: bytes) -> None:
    got = c_segment()(seg)
    assert got == py_segment(seg)
    assert type(got) is bytes
    if got == seg:
        assert got is seg  # unchanged: the same object, no copy


@needs_c
def test_c_segment_at_every_offset() -> None:
    """Each pattern at every position around the 16-byte blocks of the fast path."""
    patterns = [
        b" ", b"\t", b"  ", b" \t", b"\t ", b" \r\n", b"\t\r\n", b"  \r\n", b" \r", b" \n",
        b" \rx", b" \r\r\n", b" \n\r", b" \0", b" \xff", b"\r\n",
    ]  # fmt: skip
    c = c_segment()
    for pattern in patterns:
        for before in range(40):
            for after in range(20):
                for fill in (b"a", b"\0", b"\xff"):
                    seg = fill * before + pattern + fill * after
                    assert c(seg) == py_segment(seg), seg
                    seg = fill * before + pattern + b" " * after
                    assert c(seg) == py_segment(seg), seg


@needs_c
def test_c_segment_long_and_random() -> None:
    rng = random.Random(5)
    c = c_segment()
    for alphabet in (b" \t\r\nx", b" x", b" \r\n" + bytes(range(128, 256)), bytes(range(256))):
        seg = bytes(rng.choice(alphabet) for _ in range(300_000))
        assert c(seg) == py_segment(seg)
    for seg in (b" " * 1_000_000, b"x" + b"\t" * 999_999, b"ab \r\n" * 200_000, b"y" * 10**6):
        assert c(seg) == py_segment(seg)


@needs_c
def test_c_segment_takes_bytes_only() -> None:
    c = c_segment()
    for bad in (bytearray(b"a  b"), memoryview(b"a  b"), "a  b", None):
        with pytest.raises(TypeError):
            c(bad)  # type: ignore[arg-type]


# --- the streaming canonicalizer with each implementation ---------------------------------


@contextmanager
def implementation(fn: Segment) -> Iterator[None]:
    saved = canon._relaxed_segment
    canon._relaxed_segment = fn
    try:
        yield
    finally:
        canon._relaxed_segment = saved


def feed(body: bytes, cuts: list[int], how: Canon, fn: Segment) -> bytes:
    out: list[bytes] = []
    with implementation(fn):
        c = BodyCanonicalizer(how, out.append)
        prev = 0
        for cut in [*sorted(cuts), len(body)]:
            c.update(body[prev:cut])
            prev = max(prev, cut)
        c.finish()
    return b"".join(out)


@needs_c
@settings(max_examples=500)
@given(body=segments, cuts=st.lists(st.integers(0, 400), max_size=12))
def test_body_canonicalizer_same_with_c_and_python(body: bytes, cuts: list[int]) -> None:
    cuts = [min(cut, len(body)) for cut in cuts]
    assert feed(body, cuts, Canon.RELAXED, c_segment()) == feed(
        body, cuts, Canon.RELAXED, py_segment
    )


@needs_c
def test_body_canonicalizer_same_on_long_bodies() -> None:
    """Bodies over the 64 KB slices, whole and in chunks that cut runs and CRLFs."""
    rng = random.Random(9)
    bodies = [
        b"x" + b" \t" * 100_000 + b"\r\n",
        b"abc \t \r\n" * 30_000,
        b"a" * 65_535 + b" \r\n" * 3,
        b"a" * 65_534 + b"  \t \r\nb" * 3,
        bytes(rng.choice(b" \t\r\n.\0\xff") for _ in range(200_000)),
    ]
    for body in bodies:
        for cuts in ([], list(range(0, len(body), 65_536)), rng.sample(range(len(body)), 50)):
            assert feed(body, cuts, Canon.RELAXED, c_segment()) == feed(
                body, cuts, Canon.RELAXED, py_segment
            )


# --- which implementation is used -----------------------------------------------------------


def _implementation_in_subprocess(**env: str) -> str:
    code = "from mailseal.dkim import canon; print(canon.RELAXED_IMPLEMENTATION)"
    environ = {k: v for k, v in os.environ.items() if k != "MAILSEAL_PURE_PYTHON"} | env
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_pure_python_forced_by_environment() -> None:
    assert _implementation_in_subprocess(MAILSEAL_PURE_PYTHON="1") == "Python"


def test_accelerator_used_when_built() -> None:
    assert _implementation_in_subprocess() == ("C" if _canon is not None else "Python")
