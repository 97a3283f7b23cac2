"""What every command shares: error exits, DNS options, reading inputs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from mailseal.errors import DnsError

F = TypeVar("F", bound=Callable[..., Any])

#: Read inputs in pieces of this size: memory stays bounded whatever the message size.
CHUNK = 65536


class Failure(click.ClickException):
    """An error the user can act on: printed as ``mailseal CMD: error: ...``, exit 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"mailseal: error: {self.format_message()}", err=True)


def dns_options(func: F) -> F:
    """Add --zone, --dns-server and --dns-timeout to a command."""
    func = click.option(
        "--dns-timeout",
        type=click.FloatRange(min=0.1),
        default=5.0,
        show_default=True,
        metavar="SECONDS",
        help="Give up on a DNS question after this long.",
    )(func)
    func = click.option(
        "--dns-server",
        "dns_servers",
        multiple=True,
        metavar="HOST[:PORT]",
        help="Ask this DNS server instead of the system resolver (repeatable).",
    )(func)
    func = click.option(
        "--zone",
        "zones",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="Answer DNS only from this RFC 1035 zone file (repeatable; works offline).",
    )(func)
    return func


def make_resolver(zones: tuple[Path, ...], servers: tuple[str, ...], timeout: float) -> Any:
    """Build the resolver the DNS options ask for; errors become a clean exit 2."""
    from mailseal.dns.resolver import build_resolver

    try:
        return build_resolver(list(zones), list(servers), timeout)
    except DnsError as exc:
        raise Failure(str(exc)) from None
    except OSError as exc:
        raise Failure(f"{getattr(exc, 'filename', '') or 'zone file'}: {exc.strerror}") from None


def open_input(name: str) -> IO[bytes]:
    """Open FILE for binary reading; '-' is standard input."""
    if name == "-":
        return sys.stdin.buffer
    return open(name, "rb")  # noqa: SIM115 - closed by the caller


def read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return
        yield chunk


def describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)
