"""The domain doctor: ``mailseal check`` and ``mailseal inspect``.

The checks are sans-IO generators (one module per area, laid out by
:mod:`.checks`), their results :class:`~mailseal.doctor.findings.Finding`
values scored by :mod:`.score`; :mod:`.runner` is the shell that asks their
DNS questions concurrently, :mod:`.local` reads the local opendkim.conf and
:mod:`.send` hands a test message to the MTA.
"""
