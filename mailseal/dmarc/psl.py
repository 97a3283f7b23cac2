"""Organizational Domains from the Public Suffix List (the bundled copy of ``publicsuffixlist``).

RFC 9989 finds the Organizational Domain with a DNS tree walk; for the checks
mailseal makes without sending mail (is a report address inside the domain?)
the Public Suffix List gives the same answer for every ordinary domain, offline.
The list is loaded once, on first use.
"""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def org_domain(name: str) -> str:
    """The registrable domain of ``name`` (``mail.example.co.uk`` -> ``example.co.uk``).

    A public suffix itself (``co.uk``) is its own Organizational Domain.
    """
    name = name.lower().rstrip(".")
    return str(_psl().privatesuffix(name) or name)


def is_public_suffix(name: str) -> bool:
    return bool(_psl().is_public(name.lower().rstrip(".")))


__all__ = ["is_public_suffix", "org_domain"]
