"""DMARC (RFC 9989, which obsoletes RFC 7489 and RFC 9091): policy records, build and lint.

``record`` models a policy record and parses its tags; ``lint`` judges one
(syntax and meaning) and writes the corrected record; ``psl`` finds
Organizational Domains with the Public Suffix List for the external-report
check. The core takes the Organizational Domain function as an argument and
asks DNS only through generators.
"""
