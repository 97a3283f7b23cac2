"""``mailseal sign``: add DKIM-Signature fields to a message."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import click

from mailseal.cli.common import CHUNK, Failure, open_input, read_chunks
from mailseal.dkim.canon import CanonError, parse_canon
from mailseal.dkim.keys import SigningKey, load_private_key
from mailseal.dkim.sign import DEFAULT_SIGN_HEADERS, MessageSigner, SignerSpec
from mailseal.errors import KeyFileError, MessageError, SigningError
from mailseal.message.headers import CrlfNormalizer, MessageSplitter


def _load_key(path: Path) -> SigningKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Failure(f"cannot read key file {path}: {exc.strerror or exc}") from None
    try:
        return load_private_key(data, str(path))
    except KeyFileError as exc:
        raise Failure(str(exc)) from None


def _spool(name: str) -> IO[bytes]:
    """Standard input cannot be read twice: keep it in a temporary file (in memory while small)."""
    spool = tempfile.SpooledTemporaryFile(max_size=4 * CHUNK)  # noqa: SIM115
    shutil.copyfileobj(sys.stdin.buffer, spool, CHUNK)
    spool.seek(0)
    return spool


def _line_ending(stream: IO[bytes]) -> bytes:
    """LF if the input's first line ends in a bare LF, else CRLF."""
    head = stream.read(CHUNK)
    stream.seek(0)
    nl = head.find(b"\n")
    return b"\n" if nl >= 0 and (nl == 0 or head[nl - 1 : nl] != b"\r") else b"\r\n"


@click.command("sign")
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key file (PEM, base64 DER, or dkimpy's Ed25519 seed). Repeat with -s.",
)
@click.option("-d", "--domain", required=True, help="Signing domain (d=).")
@click.option("-s", "--selector", "selectors", multiple=True, required=True, help="Selector (s=).")
@click.option(
    "-a",
    "--algorithm",
    type=click.Choice(["rsa-sha256", "ed25519-sha256"]),
    help="Signing algorithm; default from the key type.",
)
@click.option(
    "-c",
    "--canonicalization",
    default="relaxed/relaxed",
    show_default=True,
    help="header/body canonicalization: simple or relaxed.",
)
@click.option(
    "--headers",
    help="Colon-separated header fields to sign (default: RFC 6376 §5.4.1's list).",
)
@click.option("--oversign/--no-oversign", default=True, show_default=True, help="Oversign From.")
@click.option("-i", "--identity", help="Agent or user identifier (i=), within the domain.")
@click.option("--now", type=int, metavar="EPOCH", help="Signing time for t= (default: now).")
@click.option(
    "--expire",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="Add x= this many seconds after the signing time.",
)
@click.argument("file", default="-", metavar="FILE")
def sign_command(
    keys: tuple[Path, ...],
    domain: str,
    selectors: tuple[str, ...],
    algorithm: str | None,
    canonicalization: str,
    headers: str | None,
    oversign: bool,
    identity: str | None,
    now: int | None,
    expire: int | None,
    file: str,
) -> None:
    """Sign FILE ('-' = standard input) and print it with DKIM-Signature fields on top.

    The output is the input byte for byte, with the new fields (in the input's
    line endings) first. Several --key/-s pairs sign with each key (RSA and
    Ed25519 at once); the first key's signature is the topmost field.
    Exit status: 0 signed, 2 on usage, input or key errors.
    """
    if len(keys) != len(selectors):
        raise click.UsageError(
            f"--key and -s come in pairs: got {len(keys)} key(s) and {len(selectors)} selector(s)"
        )
    try:
        header_canon, body_canon = parse_canon(canonicalization)
    except CanonError as exc:
        raise click.BadParameter(str(exc), param_hint="'-c'") from None
    try:
        domain_a = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise click.BadParameter(f"{domain!r} is not a domain name", param_hint="'-d'") from None
    sign_list = DEFAULT_SIGN_HEADERS
    if headers:
        sign_list = tuple(h.strip().lower() for h in headers.split(":") if h.strip())
        if "from" not in sign_list:
            sign_list = ("from", *sign_list)
    specs = [
        SignerSpec(
            key=_load_key(path),
            domain=domain_a,
            selector=sel,
            algorithm=algorithm or "",
            header_canon=header_canon,
            body_canon=body_canon,
            headers=sign_list,
            oversign=("from",) if oversign else (),
            identity=identity,
            expire_after=expire,
        )
        for path, sel in zip(keys, selectors, strict=True)
    ]
    when = int(time.time()) if now is None else now
    try:
        stream = _spool(file) if file == "-" else open_input(file)
    except OSError as exc:
        raise Failure(f"cannot read {file}: {exc.strerror or exc}") from None
    with stream:
        try:
            fields_out = _sign_stream(stream, specs, when)
        except (SigningError, MessageError) as exc:
            raise Failure(f"{file}: {exc}") from None
        except OSError as exc:
            raise Failure(f"cannot read {file}: {exc.strerror or exc}") from None
        stream.seek(0)
        eol = _line_ending(stream)
        out = sys.stdout.buffer
        for f in fields_out:
            out.write(f.replace(b"\r\n", eol) + eol)
        for chunk in read_chunks(stream):
            out.write(chunk)
        out.flush()


def _sign_stream(stream: IO[bytes], specs: list[SignerSpec], now: int) -> list[bytes]:
    try:
        signer = MessageSigner(specs)
    except SigningError as exc:
        raise Failure(str(exc)) from None
    norm = CrlfNormalizer()
    splitter = MessageSplitter()
    for raw in read_chunks(stream):
        body = splitter.feed(norm.feed(raw))
        if body:
            signer.update(body)
    tail = splitter.feed(norm.finish())
    if tail:
        signer.update(tail)
    return signer.finish(splitter.finish(), now)
