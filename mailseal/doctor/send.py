"""Hand a message to the local MTA (a shell): ``sendmail -t -oi`` or SMTP to localhost.

``sendmail -t`` takes the recipients from the To: field and ``-oi`` stops a
line holding a single dot from ending the message; the message goes in with
local (LF) line ends, as every sendmail-compatible program expects. SMTP
(``--smtp HOST[:PORT]``) speaks to a server directly, as a mail client would.
Neither path retries: the MTA queues the message and does that.
"""

from __future__ import annotations

import smtplib
import subprocess
from pathlib import Path
from typing import Final

from mailseal.errors import MailsealError

SENDMAIL: Final = Path("/usr/sbin/sendmail")
SEND_TIMEOUT: Final = 60.0  # seconds for the MTA to take the message


class SendError(MailsealError):
    """The MTA did not take the message; the text says what it said."""


def send_sendmail(message: bytes, sender: str, sendmail: Path = SENDMAIL) -> str:
    """Pipe ``message`` (CRLF form) to ``sendmail -t -oi -f SENDER``; say how it went."""
    command = [str(sendmail), "-t", "-oi", "-f", sender]
    try:
        done = subprocess.run(
            command,
            input=message.replace(b"\r\n", b"\n"),
            capture_output=True,
            timeout=SEND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise SendError(
            f"{sendmail} does not exist: is an MTA (Postfix) installed? Or use --smtp HOST[:PORT]"
        ) from None
    except PermissionError:
        raise SendError(f"{sendmail} cannot be run (permission denied)") from None
    except subprocess.TimeoutExpired:
        raise SendError(f"{sendmail} did not finish within {SEND_TIMEOUT:g} s") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
        raise SendError(f"{' '.join(command)} exited {done.returncode}: {said or 'no message'}")
    return f"handed to {sendmail} -t -oi"


def send_smtp(message: bytes, sender: str, recipient: str, host: str, port: int) -> str:
    """Send ``message`` over SMTP to ``host:port`` (no TLS, no login: a local MTA)."""
    try:
        with smtplib.SMTP(host, port, timeout=SEND_TIMEOUT) as smtp:
            refused = smtp.sendmail(sender, [recipient], message)
    except smtplib.SMTPResponseException as exc:
        said = exc.smtp_error
        text = said.decode("utf-8", "replace") if isinstance(said, bytes) else said
        raise SendError(f"{host}:{port} said {exc.smtp_code} {text}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendError(f"{host}:{port} refused {recipient}: {exc.recipients}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"cannot send through {host}:{port}: {exc}") from None
    if refused:
        raise SendError(f"{host}:{port} refused {recipient}: {refused}")
    return f"accepted by the SMTP server at {host}:{port}"


__all__ = ["SENDMAIL", "SendError", "send_sendmail", "send_smtp"]
