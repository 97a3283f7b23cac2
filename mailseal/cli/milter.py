"""``mailseal milter``: the DKIM milter, with opendkim(8)'s command line."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Final

import click

from mailseal import __version__
from mailseal.errors import ConfigError, KeyFileError, MailsealError

EX_USAGE: Final = 64
EX_UNAVAILABLE: Final = 69
EX_CONFIG: Final = 78  # what OpenDKIM exits with on a bad configuration


class _Fields(logging.Formatter):
    """``message key=value ...`` for stderr: one queue ID greps across all lines."""

    SKIP: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
        "message",
        "asctime",
        "event",
    }

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = [f"{k}={v}" for k, v in record.__dict__.items() if k not in self.SKIP and v]
        return text + (" " + " ".join(extra) if extra else "")


def setup_logging(*, syslog: bool, facility: str, foreground: bool, verbose: bool) -> None:
    root = logging.getLogger("mailseal")
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    if syslog and os.path.exists("/dev/log"):
        try:
            fac = logging.handlers.SysLogHandler.facility_names.get(facility.lower(), 2 << 3)
            handler = logging.handlers.SysLogHandler(address="/dev/log", facility=fac)
            # OpenDKIM compat: the same ident, so existing log parsers keep working.
            handler.setFormatter(logging.Formatter("opendkim[%(process)d]: %(message)s"))
            root.addHandler(handler)
        except OSError:
            pass
    if (foreground and not syslog) or verbose or not root.handlers:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(_Fields("%(asctime)s mailseal[%(process)d]: %(message)s"))
        root.addHandler(stderr)


@click.command("milter", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-x",
    "config_file",
    default="/etc/opendkim.conf",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Configuration file.",
)
@click.option(
    "-p",
    "socket_spec",
    metavar="SOCKET",
    help="Socket to listen on (inet:PORT@HOST, inet6:PORT@HOST, local:/path); overrides Socket.",
)
@click.option("-f", "foreground", is_flag=True, help="Stay in the foreground, log to stderr too.")
@click.option("-n", "check_only", is_flag=True, help="Check the configuration and exit.")
@click.option(
    "-P",
    "pid_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the process ID here; overrides PidFile.",
)
@click.option(
    "-u", "user", metavar="USER[:GROUP]", help="Run workers as this user; overrides UserID."
)
@click.option("-v", "verbose", is_flag=True, help="Log more (debug).")
@click.option("-V", "show_version", is_flag=True, help="Print the version and exit.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Worker processes (default: MailsealWorkers, else half the CPU cores, at least 1).",
)
def milter_command(
    config_file: Path,
    socket_spec: str | None,
    foreground: bool,
    check_only: bool,
    pid_file: Path | None,
    user: str | None,
    verbose: bool,
    show_version: bool,
    workers: int | None,
) -> None:
    """Run the DKIM signing and verifying milter, configured by opendkim.conf.

    A drop-in replacement for opendkim(8): the same configuration file, tables
    and command-line flags. Reload with SIGUSR1 or SIGHUP; stop with SIGTERM.
    Exit status: 0 stopped cleanly; 78 configuration error; 69 cannot start
    (socket, user); 64 usage error.
    """
    if show_version:
        click.echo(f"mailseal milter {__version__} (opendkim-compatible)")
        return
    from mailseal.config.opendkim import load_config

    try:
        cfg = load_config(config_file)
    except (ConfigError, KeyFileError) as exc:
        click.echo(f"mailseal: {exc}", err=True)
        raise SystemExit(EX_CONFIG) from None
    except OSError as exc:
        click.echo(f"mailseal: {config_file}: {exc.strerror or exc}", err=True)
        raise SystemExit(EX_CONFIG) from None
    for w in cfg.warnings:
        click.echo(f"mailseal: warning: {w}", err=True)
    spec = socket_spec or cfg.socket
    if not spec:
        click.echo(f"mailseal: {config_file}: no Socket given (set Socket or use -p)", err=True)
        raise SystemExit(EX_CONFIG)
    if check_only:
        click.echo(f"{config_file}: configuration OK", err=True)
        return
    from mailseal.milter.server import ServerError, default_workers, serve

    setup_logging(
        syslog=cfg.syslog,
        facility=cfg.syslog_facility,
        foreground=foreground or not cfg.background,
        verbose=verbose,
    )
    for w in cfg.warnings:
        logging.getLogger("mailseal.config").warning("%s", w, extra={"event": "config.warning"})
    count = workers or cfg.workers or default_workers()
    try:
        status = serve(
            config_file,
            cfg,
            socket_spec=spec,
            foreground=foreground or not cfg.background,
            pid_file=pid_file or cfg.pid_file,
            user=user or cfg.user_id,
            workers=count,
        )
    except ServerError as exc:
        click.echo(f"mailseal: {exc}", err=True)
        raise SystemExit(EX_UNAVAILABLE) from None
    except MailsealError as exc:
        click.echo(f"mailseal: {exc}", err=True)
        raise SystemExit(EX_UNAVAILABLE) from None
    raise SystemExit(status)
