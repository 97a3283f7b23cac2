"""``mailseal bench``: load a milter as Postfix would, and check every answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from mailseal.cli.common import Failure
from mailseal.errors import MailsealError

if TYPE_CHECKING:
    from mailseal.bench.load import Bench, BenchRun
    from mailseal.bench.stats import Summary

EX_ERRORS: Final = 1  # the run finished, but some messages failed or did not check
EX_UNAVAILABLE: Final = 69  # no connection to the milter


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("socket_spec", metavar="SOCKET")
@click.option(
    "--messages",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    metavar="N",
    help="Messages to send.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    metavar="C",
    help="Milter connections at once (like Postfix smtpd processes); each is reused.",
)
@click.option(
    "--size",
    type=click.Choice(["2k", "20k", "200k", "50m", "mix"]),
    default="2k",
    show_default=True,
    help="Message size; mix is 70% 2k, 25% 20k (text+HTML), 5% 200k (attachment).",
)
@click.option(
    "--mode",
    type=click.Choice(["sign", "verify"]),
    default="sign",
    show_default=True,
    help="sign: a local client sends; verify: an outside one sends messages signed with --key.",
)
@click.option(
    "--protocol",
    type=click.Choice(["2", "6"]),
    default="6",
    show_default=True,
    help="Milter protocol version, as Postfix's milter_protocol.",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key: signatures are checked against its public half (sign mode), "
    "or messages are signed with it (verify mode).",
)
@click.option("-d", "--domain", default=None, help="d= of --key (default: the --from domain).")
@click.option("-s", "--selector", default=None, help="s= of --key.")
@click.option(
    "--from",
    "sender",
    metavar="ADDR",
    help="Envelope sender and From: address (default: bench@DOMAIN).",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench_command(
    socket_spec: str,
    messages: int,
    concurrency: int,
    size: str,
    mode: str,
    protocol: str,
    key_file: Path | None,
    domain: str | None,
    selector: str | None,
    sender: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Send messages through the milter at SOCKET as Postfix would; report messages/s,
    latency percentiles and errors.

    SOCKET is inet:PORT@HOST, inet6:PORT@HOST or unix:/path. Works with any milter
    (mailseal, OpenDKIM, dkimpy-milter). With --key, -d and -s every returned
    DKIM-Signature must verify against the key's public half (offline) before the
    message counts; verify mode needs them to sign what it sends, and counts a
    message only when the milter's Authentication-Results says dkim=pass.
    Exit status: 0 every message checked out; 1 some did not; 2 usage error;
    69 no connection to the milter.
    """
    from mailseal.bench.corpus import Mode
    from mailseal.bench.load import Bench, BenchError, BenchOptions
    from mailseal.cli.sign import _load_key
    from mailseal.milter.sockets import parse_socket_spec

    try:
        parse_socket_spec(socket_spec)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    if key_file is not None and selector is None:
        raise Failure("--key needs -s SELECTOR (and -d DOMAIN unless --from names it)")
    if mode == "verify" and key_file is None:
        raise Failure("--mode verify signs its messages itself: give --key FILE -d DOMAIN -s SEL")
    if domain is None:
        domain = sender.rpartition("@")[2] if sender and "@" in sender else "example.com"
    key = _load_key(key_file) if key_file is not None else None
    try:
        opts = BenchOptions(
            socket=socket_spec,
            messages=messages,
            concurrency=concurrency,
            size=size,
            mode=Mode(mode),
            protocol=int(protocol),
            key=key,
            domain=domain.lower(),
            selector=selector or "mail",
            sender=sender,
            timeout=timeout,
        )
        bench = Bench(opts)
    except (ValueError, MailsealError) as exc:
        raise Failure(str(exc)) from None
    try:
        run = _run_with_progress(bench, messages, quiet=as_json)
    except BenchError as exc:
        click.echo(f"mailseal: {exc}", err=True)
        raise SystemExit(EX_UNAVAILABLE) from None
    summary = bench.summary(run)
    if as_json:
        click.echo(json.dumps(summary.to_json()))
    else:
        _render(summary)
    if summary.errors:
        raise SystemExit(EX_ERRORS)


def _run_with_progress(bench: Bench, total: int, *, quiet: bool) -> BenchRun:
    if quiet or not sys.stderr.isatty():
        return bench.run()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"{bench.opts.mode.value} {bench.opts.size}", total=total)
        return bench.run(lambda done: bar.update(task, completed=done))


def _render(s: Summary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mailseal bench {s.socket}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    flags = s.milter_flags
    table.add_row("run", f"{s.mode}, {s.size} ({s.mean_message_bytes:,.0f} bytes on average)")
    table.add_row(
        "protocol",
        f"{s.protocol} offered, {s.negotiated} agreed"
        + (f" (actions 0x{flags['actions']:X}, flags 0x{flags['protocol']:X})" if flags else ""),
    )
    table.add_row("messages", f"{s.sent} sent over {s.concurrency} connection(s), {s.ok} ok")
    table.add_row("messages/s", f"{s.messages_per_second:,.1f}  ({s.seconds:.2f} s)")
    table.add_row("this client", f"{s.client_cpu_ms:.2f} ms CPU per message")
    lat = s.latency_ms
    table.add_row("latency ms", f"p50 {lat.p50:.2f}  p95 {lat.p95:.2f}  p99 {lat.p99:.2f}")
    errors = ", ".join(f"{k}: {n}" for k, n in s.error_kinds.items()) or "none"
    table.add_row("errors", f"{s.errors}" + (f" ({errors})" if s.errors else ""))
    if s.mode == "sign":
        checked = "verified against --key" if s.checked else "NOT checked (no --key)"
    else:
        checked = "Authentication-Results dkim=pass for the domain"
    table.add_row("answers", checked)
    Console().print(table)
