"""``mailseal demo``: the tutorial's setup for a throwaway domain, signed, verified and served.

It writes what the seed tutorial has an admin write by hand (opendkim.conf,
KeyTable, SigningTable, TrustedHosts, keys) plus a zone file publishing the
keys; signs and verifies a sample message offline; then runs ``mailseal
milter`` on that configuration and sends a message through it: through a
private Postfix instance on loopback when one can run here (root, Postfix
installed), else through mailseal's built-in milter client, which speaks to
the milter as Postfix would. Either way it verifies the signatures the milter
added against the zone file, and keeps the milter serving until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

import click

from mailseal.cli.common import Failure, make_resolver
from mailseal.demo.catcher import Catcher
from mailseal.demo.postfix import (
    POSTFIX_BIN,
    PostfixError,
    PostfixInstance,
    PostfixUnavailable,
    other_mtas,
    queue_id,
    tmpfs_dir,
    unavailable_reason,
)
from mailseal.dkim.keys import KeyType, SigningKey, generate_key, private_pem
from mailseal.dkim.results import MessageVerdict
from mailseal.dkim.sign import SignerSpec, sign_message
from mailseal.dkim.verify import VerifyOptions, verify_message
from mailseal.dns.drive import drive
from mailseal.message.headers import to_crlf

DOMAIN: Final = "example.com"
TUTORIAL_PORT: Final = 12145
SENDER: Final = f"sender@{DOMAIN}"
RECIPIENT: Final = "someone@example.net"
DELIVERY_TIMEOUT: Final = 30.0


def zone_text(domain: str, records: list[tuple[str, str]]) -> str:
    """A small master file for ``domain`` with TXT records split into <=255-byte strings."""
    lines = [
        f"$ORIGIN {domain}.",
        "$TTL 300",
        f"@ IN SOA ns1.{domain}. hostmaster.{domain}. 1 3600 600 86400 300",
        f"@ IN NS ns1.{domain}.",
        "ns1 IN A 192.0.2.53",
    ]
    for owner, value in records:
        strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        lines.append(f"{owner} IN TXT ( {strings} )")
    return "\n".join(lines) + "\n"


def sample_message(domain: str, now: int) -> bytes:
    text = f"""From: Demo Sender <sender@{domain}>
To: Someone <{RECIPIENT}>
Subject: mailseal demo: a signed message
Date: {email.utils.formatdate(now)}
Message-ID: <demo.{now}@{domain}>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello!

This message was signed by mailseal with an RSA-2048 key and an Ed25519 key,
then verified against a zone file holding the published public keys.
"""
    return to_crlf(text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class DemoSetup:
    root: Path
    config: Path
    zone: Path
    keys: tuple[tuple[str, SigningKey], ...]  # (selector, key)
    socket: str


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, else a free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise Failure("no free TCP port on 127.0.0.1")


def write_setup(root: Path, port: int) -> DemoSetup:
    """The tutorial's files for DOMAIN, RSA (selector mail) and Ed25519 (selector ed)."""
    keydir = root / "keys" / DOMAIN
    keydir.mkdir(parents=True, exist_ok=True)
    for d in (root, root / "keys", keydir):
        d.chmod(0o700)
    keys = (("mail", generate_key(KeyType.RSA, 2048)), ("ed", generate_key(KeyType.ED25519)))
    for sel, key in keys:
        path = keydir / f"{sel}.private"
        path.write_bytes(private_pem(key))
        path.chmod(0o600)
    (root / "TrustedHosts").write_text("127.0.0.1\nlocalhost\n::1\n")
    (root / "KeyTable").write_text(
        f"mail._domainkey.{DOMAIN} {DOMAIN}:mail:{keydir}/mail.private\n"
        f"ed._domainkey.{DOMAIN} {DOMAIN}:ed:{keydir}/ed.private:ed25519-sha256\n"
    )
    (root / "SigningTable").write_text(
        f"*@{DOMAIN} mail._domainkey.{DOMAIN}\n*@{DOMAIN} ed._domainkey.{DOMAIN}\n"
    )
    spec = f"inet:{port}@127.0.0.1"
    config = root / "opendkim.conf"
    config.write_text(
        "# The seed tutorial's opendkim.conf, for a throwaway domain.\n"
        "Syslog no\nUMask 002\nCanonicalization relaxed/simple\nMode sv\n"
        "SignatureAlgorithm rsa-sha256\nAutoRestart yes\nAutoRestartRate 10/1h\n"
        f"Socket {spec}\n"
        f"ExternalIgnoreList refile:{root}/TrustedHosts\n"
        f"InternalHosts refile:{root}/TrustedHosts\n"
        f"KeyTable refile:{root}/KeyTable\nSigningTable refile:{root}/SigningTable\n"
        "MultipleSignatures yes\nOversignHeaders From\nSyslogSuccess yes\n"
    )
    zone = root / f"{DOMAIN}.zone"
    zone.write_text(
        zone_text(DOMAIN, [(f"{sel}._domainkey", key.public_record()) for sel, key in keys])
    )
    return DemoSetup(root, config, zone, keys, spec)


def show_verdict(verdict: MessageVerdict) -> None:
    for s in verdict.signatures:
        colour = "green" if s.result.value == "pass" else "red"
        reason = f" ({s.reason})" if s.result.value != "pass" or s.testing else ""
        click.echo(
            f"  dkim={click.style(s.result.value, fg=colour)} d={s.domain} s={s.selector} "
            f"a={s.algorithm}{reason}"
        )


def offline_round(setup: DemoSetup, now: int) -> bool:
    """Sign the sample with both keys and verify it against the zone file."""
    message = sample_message(DOMAIN, now)
    specs = [SignerSpec(key, DOMAIN, sel) for sel, key in setup.keys]
    signed = b"".join(f + b"\r\n" for f in sign_message(message, specs, now)) + message
    signed_path = setup.root / "signed.eml"
    signed_path.write_bytes(signed)
    click.secho("Zone file (the DNS records to publish):", bold=True)
    click.echo(setup.zone.read_text())
    click.secho("Signed message:", bold=True)
    click.echo(signed.decode("utf-8").replace("\r\n", "\n"))
    resolver = make_resolver((setup.zone,), (), 5.0)
    verdict = asyncio.run(drive(verify_message(signed, VerifyOptions(), now), resolver))
    click.secho("Verification against the zone file:", bold=True)
    show_verdict(verdict)
    click.echo(
        f"\nTry it yourself:\n  mailseal verify --zone {setup.zone} {signed_path}\n"
        f"  sed 's/Hello/Jello/' {signed_path} | mailseal verify --zone {setup.zone} -\n"
    )
    return verdict.result.value == "pass"


def start_milter(setup: DemoSetup) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailseal", "milter", "-f", "-x", str(setup.config)],
        stdin=subprocess.DEVNULL,
    )
    port = int(setup.socket.split(":")[1].split("@")[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"the milter stopped at start (exit {proc.returncode}); see above")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise Failure("the milter did not start listening within 30 s")


async def through_milter(setup: DemoSetup, now: int) -> MessageVerdict:
    """Send the sample through the milter as Postfix would; verify what it added."""
    from mailseal.message.headers import split_fields
    from mailseal.milter.client import MilterClient

    message = sample_message(DOMAIN, now)
    head, _, body = message.partition(b"\r\n\r\n")
    fields = split_fields(head + b"\r\n")
    client = MilterClient(timeout=10)
    await client.connect(setup.socket)
    await client.negotiate(version=6)
    result = await client.send_message(
        headers=[(f.name, f.value) for f in fields], body=body, mail_from=f"<sender@{DOMAIN}>"
    )
    await client.quit()
    added = b"".join(
        h.name + b":" + h.value.replace(b"\n", b"\r\n") + b"\r\n"
        for h in reversed(result.inserted_headers)
    )
    resolver = make_resolver((setup.zone,), (), 5.0)
    return await drive(verify_message(added + message, VerifyOptions(), now), resolver)


def install_postfix() -> str | None:
    """Install Debian's postfix package with no system instance; return why not, or None.

    Only as root, only with apt-get, and only where no other MTA is installed
    (the package would remove it). debconf answers "No configuration", so no
    system-wide mail server is set up: the demo runs its own private instance.
    """
    if (
        os.geteuid() != 0
        or not shutil.which("apt-get")
        or not shutil.which("debconf-set-selections")
    ):
        return "not root, or no apt-get/debconf here"
    click.secho("Installing postfix with apt-get (debconf: No configuration)...", bold=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        (["debconf-set-selections"], b"postfix postfix/main_mailer_type select No configuration\n"),
        (["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"], None),
    ]
    for cmd, stdin in steps:
        try:
            done = subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(cmd)} failed: {exc}"
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            return f"{' '.join(cmd)} failed: {' / '.join(tail)}"
    return None if os.path.exists(POSTFIX_BIN) else "postfix still missing after apt-get"


def postfix_obstacle(no_postfix: bool, install: bool = True) -> str | None:
    """Why the demo cannot use a private Postfix here (None: it can)."""
    if no_postfix:
        return "--no-postfix was given"
    if not os.path.exists(POSTFIX_BIN):
        others = other_mtas()
        if others:
            return (
                f"Postfix is not installed, and another MTA is ({', '.join(others)}); "
                "the postfix package would remove it, so the demo leaves it alone"
            )
        problem = install_postfix() if install else "--no-install was given"
        if problem is None:
            return unavailable_reason()
        return (
            f"Postfix is not installed ({problem}); `./run demo` run as root installs it "
            "(apt-get install postfix, debconf answer 'No configuration', so no system "
            "instance is set up), or install it yourself the same way"
        )
    if os.geteuid() != 0:
        return (
            "a private Postfix instance needs root (`postfix -c DIR start`); "
            "run the demo as root to see the milter behind Postfix"
        )
    return unavailable_reason()


class Undelivered(Exception):
    """Postfix ran but the sample did not come through (the message says where it stopped)."""


def smtp_error(exc: Exception) -> str:
    """An smtplib error as the server's reply (``451 4.7.1 ...``) where there is one."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"<{r}>: {code} {text.decode('utf-8', 'replace')}"
            for r, (code, text) in exc.recipients.items()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return f"{exc.smtp_code} {text}"
    return str(exc) or type(exc).__name__


def keep_postfix_files(pf: PostfixInstance, keep: Path) -> None:
    """Copy the instance's main.cf, master.cf and maillog into ``keep``."""
    keep.mkdir(parents=True, exist_ok=True)
    for src in (pf.etc / "main.cf", pf.etc / "master.cf", pf.maillog):
        with contextlib.suppress(OSError):
            shutil.copyfile(src, keep / src.name)


def wait_log(pf: PostfixInstance, needle: str, timeout: float) -> None:
    """Wait (bounded) until the maillog has a line containing ``needle``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pf.log_lines(needle):
        time.sleep(0.1)


def through_postfix(setup: DemoSetup, now: int) -> MessageVerdict:
    """Send the sample through a private Postfix whose smtpd_milters is the demo milter.

    Postfix relays it to a catcher (aiosmtpd, in this process); the message as
    delivered is printed and its signatures verified against the zone file.
    Stops Postfix before returning and keeps its main.cf, master.cf and
    maillog (and the delivered message) in DIR/postfix. PostfixError when
    Postfix does not start, Undelivered when the message does not arrive.
    """
    keep = setup.root / "postfix"
    milter_port = setup.socket.split(":")[1].split("@")[0]
    milter = f"inet:127.0.0.1:{milter_port}"
    base = tmpfs_dir("mailseal-demo-postfix-")
    catcher = Catcher(base / "catcher")
    try:
        pf = PostfixInstance(
            catcher.port,
            {
                "smtpd_milters": milter,
                "non_smtpd_milters": "$smtpd_milters",
                "milter_protocol": "6",
                "milter_default_action": "tempfail",
            },
            base=base,
        )
    except PostfixUnavailable as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise PostfixError(str(exc)) from None
    click.secho(f"Starting a private Postfix on loopback: postfix -c {pf.etc} start", bold=True)
    rows = [
        ("smtpd", f"127.0.0.1:{pf.port()} (loopback only)"),
        ("smtpd_milters", f"{milter} (the milter above)"),
        ("non_smtpd_milters", "$smtpd_milters"),
        ("milter_protocol", "6"),
        ("milter_default_action", "tempfail (a broken milter shows as 4xx, never unsigned mail)"),
        ("relayhost", f"[127.0.0.1]:{catcher.port} (a catcher: aiosmtpd in this process)"),
        ("queue, maillog", f"under {pf.base}"),
    ]
    for name, value in rows:
        click.echo(f"  {name:22} {value}")
    try:
        catcher.start()
        started = time.monotonic()
        pf.start()
        click.echo(f"  started in {time.monotonic() - started:.1f} s\n")
        message = sample_message(DOMAIN, now)
        click.secho(
            f"Sending the sample over SMTP to 127.0.0.1:{pf.port()} from 127.0.0.1 "
            "(in TrustedHosts, so the milter signs):",
            bold=True,
        )
        try:
            reply = pf.submit(message, SENDER, [RECIPIENT], timeout=DELIVERY_TIMEOUT)
        except (smtplib.SMTPException, OSError) as exc:
            raise Undelivered(f"Postfix did not take the message: {smtp_error(exc)}") from None
        click.echo(f"  MAIL FROM:<{SENDER}> RCPT TO:<{RECIPIENT}> DATA -> {reply}")
        try:
            token = f"<demo.{now}@{DOMAIN}>".encode()
            caught = catcher.wait_for(1, DELIVERY_TIMEOUT, token)[0]
        except TimeoutError:
            raise Undelivered(
                f"the message did not reach the catcher within {DELIVERY_TIMEOUT:g} s"
            ) from None
        qid = queue_id(reply)
        if qid:
            wait_log(pf, f"{qid}: removed", 3.0)
            click.secho(f"\nPostfix's maillog for queue id {qid}:", bold=True)
            for line in pf.log_lines(f"{qid}:"):
                click.echo(f"  {line}")
        delivered = caught.data
        keep.mkdir(parents=True, exist_ok=True)
        (keep / "delivered.eml").write_bytes(delivered)
        click.secho(f"\nDelivered to the catcher (as received, {len(delivered)} bytes):", bold=True)
        click.echo(delivered.decode("utf-8", "replace").replace("\r\n", "\n"))
    except Undelivered as exc:
        raise Undelivered(f"{exc}\n{pf.log_excerpt()}") from None
    finally:
        pf.stop()
        keep_postfix_files(pf, keep)
        pf.cleanup()
        catcher.stop()
    resolver = make_resolver((setup.zone,), (), 5.0)
    verdict = asyncio.run(
        drive(verify_message(delivered, VerifyOptions(), int(time.time())), resolver)
    )
    click.secho("Its signatures, verified against the zone file:", bold=True)
    show_verdict(verdict)
    click.echo(
        f"\nStopped the private Postfix (its main.cf, master.cf and maillog are kept in {keep}/,\n"
        f"the delivered message in {keep}/delivered.eml); the milter keeps serving.\n"
        f"  mailseal verify --zone {setup.zone} {keep}/delivered.eml"
    )
    return verdict


def through_client(setup: DemoSetup, now: int) -> MessageVerdict:
    click.secho(
        "Sending a message through the milter with mailseal's built-in milter client "
        "(it speaks to the milter exactly as Postfix would, milter protocol 6):",
        bold=True,
    )
    verdict = asyncio.run(through_milter(setup, now))
    show_verdict(verdict)
    return verdict


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the demo's files here (default: a new directory under the temp dir).",
)
@click.option("--offline", is_flag=True, help="Only sign and verify; do not run the milter.")
@click.option(
    "--no-postfix",
    is_flag=True,
    help="Do not run a private Postfix; use the built-in milter client instead.",
)
@click.option(
    "--no-install",
    is_flag=True,
    help="Do not install postfix with apt-get when it is missing (root only).",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0),
    metavar="N",
    help="Stop the milter after N seconds (default: run until Ctrl-C).",
)
def demo_command(
    directory: Path | None,
    offline: bool,
    no_postfix: bool,
    no_install: bool,
    seconds: float | None,
) -> None:
    """Set up DKIM for a throwaway domain as the tutorial does, and run the milter on it.

    Writes opendkim.conf, KeyTable, SigningTable, TrustedHosts, an RSA-2048 and
    an Ed25519 key and a zone file publishing both; signs and verifies a sample
    message offline; then starts `mailseal milter` on that configuration
    (inet:12145@127.0.0.1, the tutorial's port, or a free one) and sends a
    message through it: through a private Postfix instance on loopback
    (smtpd_milters pointing at the milter, relaying to a catcher) when running
    as root with Postfix installed, otherwise through mailseal's built-in milter
    client, saying why. The signatures the milter added are verified against
    the zone file. The milter keeps serving until Ctrl-C, ready for Postfix's
    smtpd_milters.
    """
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="mailseal-demo-"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Failure(f"cannot use {directory}: {exc.strerror or exc}") from None
    setup = write_setup(directory, free_port(TUTORIAL_PORT))
    now = int(time.time())
    click.secho(f"Demo domain {DOMAIN}, files in {directory}", bold=True)
    for name in ("opendkim.conf", "KeyTable", "SigningTable", "TrustedHosts"):
        click.echo(f"  {name + ':':15} {directory / name}")
    click.echo(f"  {'keys:':15} {directory}/keys/{DOMAIN}/{{mail,ed}}.private (mode 0600)")
    click.echo(f"  {'zone file:':15} {setup.zone}\n")
    ok = offline_round(setup, now)
    if offline or not ok:
        raise SystemExit(0 if ok else 1)

    previous = signal.signal(signal.SIGTERM, _terminate)  # so the finally blocks run
    click.secho(f"Starting the milter: mailseal milter -f -x {setup.config}", bold=True)
    proc = start_milter(setup)
    click.echo(f"  listening on {setup.socket}\n")
    serving = False
    try:
        obstacle = postfix_obstacle(no_postfix, install=not no_install)
        verdict: MessageVerdict | None = None
        if obstacle is None:
            try:
                verdict = through_postfix(setup, now)
            except PostfixError as exc:
                click.secho("The private Postfix did not start:", fg="red", bold=True)
                click.echo(f"{exc}\n")
                obstacle = (
                    "the private Postfix did not start (see above; its main.cf and master.cf "
                    f"are in {setup.root / 'postfix'})"
                )
            except Undelivered as exc:
                click.secho(f"The message did not come through Postfix: {exc}", fg="red", err=True)
                raise SystemExit(1) from None
        if verdict is None:
            click.secho(f"Not using Postfix: {obstacle}.", fg="yellow")
            click.echo("Falling back to the built-in milter client.\n")
            verdict = through_client(setup, now)
        if verdict.result.value != "pass" or len(verdict.signatures) != 2:
            raise SystemExit(1)
        port = setup.socket.split(":")[1].split("@")[0]
        click.echo(
            "\nThe milter is serving. To use it from your Postfix, add to main.cf:\n"
            f"  smtpd_milters = inet:localhost:{port}\n"
            "  non_smtpd_milters = $smtpd_milters\n"
            "  milter_default_action = tempfail\n"
            "and publish the records of the zone file above in your domain's DNS.\n"
        )
        click.echo("Press Ctrl-C to stop." if seconds is None else f"Stopping in {seconds:g} s.")
        serving = True
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass
    except KeyboardInterrupt:
        if not serving:  # interrupted before the verdict
            raise SystemExit(130) from None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        signal.signal(signal.SIGTERM, previous)
    raise SystemExit(0)


__all__ = ["demo_command", "zone_text"]
