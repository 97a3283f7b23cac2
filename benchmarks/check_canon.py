"""Equivalence check: the streaming canonicalizer against the plain reference.

Random and hostile bodies, each fed whole, byte by byte (small ones) and in
random chunkings, under simple and relaxed; also BodyHasher with and without
l=. Exits non-zero on the first difference, printing a reproducer.

    .venv/bin/python benchmarks/check_canon.py [--seed N] [--rounds N]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_canon import reference, reference_header  # noqa: E402

from mailseal.dkim.canon import BodyCanonicalizer, BodyHasher, Canon, canon_header  # noqa: E402

ALPHABETS = [
    b" \t\r\n",
    b" \t\r\nab",
    b"\r\n",
    b" \r\n",
    b"\t\r\nx",
    b"ab \r\n",
    b" \tx",
    bytes(range(256)),
]
TOKENS = [b"\r\n", b" ", b"\t", b"  ", b" \r\n", b"\t\r\n", b"\r", b"\n", b"\r\n\r\n", b"w", b"x"]


def random_body(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 2, 3, 5, 8, 20, 100, 1000, 5000])
    if rng.random() < 0.5:
        alphabet = rng.choice(ALPHABETS)
        return bytes(rng.choice(alphabet) for _ in range(n))
    return b"".join(rng.choice(TOKENS) for _ in range(n // 3 + 1))


SLICE_TAILS = [b" \r\n", b"\r\n\r\n", b"  \t \r\nb", b"\r\r\n", b"\n\r\n", b"\t", b"x \r\n\r\n"]


def hostile_bodies() -> list[bytes]:
    n = 200_000
    return [
        b" " * n,
        b"x" + b" " * n + b"y\r\n",
        b" \t" * (n // 2),
        b"x \t" * (n // 3) + b"\r\n",
        b"abc \t \r\n" * (n // 8),
        b"\r\n" * n,
        b"x\r\n" + b"\r\n" * n,
        b"\n" + b"\r\n" * n,
        b"x\n" + b"\r\n" * n + b"\r",
        b"\n\r" * n,
        b"\r" * n,
        b"\n" * n,
        b"\tx" * n,
        b"  x" * (n // 3),
        b" \r \n" * (n // 4),
        bytes(random.Random(7).choice(b" \t\r\n.") for _ in range(n)),
        # Around the engine's 64 KB slices of a long chunk.
        *(b"a" * (65536 - k) + tail * 3 for k in range(4) for tail in SLICE_TAILS),
    ]


def chunkings(rng: random.Random, size: int) -> list[list[int]]:
    """Lists of cut points: whole, every byte (small bodies), random sizes, 64 KB."""
    out: list[list[int]] = [[]]
    if size <= 200:
        out.append(list(range(1, size)))
    for _ in range(3):
        if size > 1:
            out.append(sorted(rng.sample(range(1, size), min(size - 1, rng.randint(1, 12)))))
    out.append(list(range(1, size, rng.choice([1, 2, 3, 7, 64, 4096]) if size < 5000 else 65536)))
    return out


def feed(body: bytes, cuts: list[int], canon: Canon) -> bytes:
    out: list[bytes] = []
    c = BodyCanonicalizer(canon, out.append)
    prev = 0
    for cut in [*cuts, len(body)]:
        c.update(body[prev:cut])
        prev = cut
    c.finish()
    return b"".join(out)


def check(body: bytes, rng: random.Random) -> None:
    for canon in Canon:
        want = reference(body, canon is Canon.RELAXED)
        for cuts in chunkings(rng, len(body)):
            got = feed(body, cuts, canon)
            if got != want:
                print(f"MISMATCH {canon.value} body={body[:200]!r} (len {len(body)})")
                print(f"  cuts={cuts[:50]}")
                print(f"  want {want[:200]!r}\n  got  {got[:200]!r}")
                sys.exit(1)
        limit = rng.randint(0, len(want) + 2)
        h = BodyHasher(canon, limit=limit)
        h.update(body)
        if h.digest() != hashlib.sha256(want[:limit]).digest() or h.length != len(want):
            print(f"MISMATCH BodyHasher {canon.value} l={limit} body={body[:200]!r}")
            sys.exit(1)


HEADER_TOKENS = [b" ", b"\t", b"\r\n", b"\r", b"\n", b"a", b"B", b":", b"  ", b"\r\n\t", b"\r\n "]


def check_headers(rng: random.Random, rounds: int) -> None:
    fields = [
        b"X:" + b" " * 100_000 + b"a",
        b"X:" + b" \t" * 50_000,
        b"X:" + b"a  " * 30_000,
        b"X:" + b"\ta" * 50_000,
        b"X :" + b"\r\n\t" * 50_000,
    ]
    for _ in range(rounds * 20):
        fields.append(b"".join(rng.choice(HEADER_TOKENS) for _ in range(rng.randint(0, 30))))
    for raw in fields:
        for canon in Canon:
            if canon_header(raw, canon) != reference_header(raw, canon is Canon.RELAXED):
                print(f"MISMATCH header {canon.value} {raw[:200]!r}")
                sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3000)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    for body in hostile_bodies():
        check(body, rng)
    for _ in range(args.rounds):
        check(random_body(rng), rng)
    check_headers(rng, args.rounds)
    print(
        f"canonicalization matches the reference: {len(hostile_bodies())} hostile bodies, "
        f"{args.rounds} random bodies, several chunkings each; "
        f"{args.rounds * 20} random header fields (seed {args.seed})"
    )


if __name__ == "__main__":
    main()
