"""The message ``mailseal check DOMAIN --send-test ADDR`` sends (built here, sent by ``send``).

A short plain-text message from the domain to the tester's address, with the
fields receivers expect (Date, Message-ID, MIME-Version) so that nothing but
the authentication results decides how it scores, and a body saying how to
read the result with ``mailseal inspect``. The clock and the Message-ID's
random part are arguments: this module does no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime


def build_test_message(domain: str, sender: str, recipient: str, now: int, token: str) -> bytes:
    """The message in CRLF form, unsigned."""
    date = format_datetime(datetime.fromtimestamp(now, UTC))
    lines = [
        f"From: mailseal test <{sender}>",
        f"To: <{recipient}>",
        f"Subject: mailseal test message for {domain}",
        f"Date: {date}",
        f"Message-ID: <mailseal-test.{token}@{domain}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
        "",
        f"This is a test message from {domain}, sent by",
        f"    mailseal check {domain} --send-test {recipient}",
        "",
        "When it arrives, save it with all its header fields (in most mail",
        'programs: "Show original" or "View source", then save or download)',
        "and score it:",
        "",
        "    mailseal inspect saved-message.eml",
        "",
        "The score reads the receiver's Authentication-Results and Received-SPF,",
        "verifies the DKIM signatures, checks DMARC alignment of the From domain",
        "and runs the domain checks for the address the message came from.",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


__all__ = ["build_test_message"]
