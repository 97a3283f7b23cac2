"""``mailseal bench``: a milter load generator that talks to any milter as Postfix does.

- ``corpus.py``: the benchmark messages (2 KB text, 20 KB text+HTML, 200 KB with a
  base64 attachment, 50 MB, and the 70/25/5 mix of docs/performance.md), deterministic.
- ``stats.py``: latency percentiles and the summary of a run.
- ``check.py``: offline checks of what the milter answered: each DKIM-Signature
  verifies against the public half of the key, each Authentication-Results says pass.
- ``load.py``: the asyncio run: C connections, each reused for message after message,
  through :class:`mailseal.milter.client.MilterClient` (which holds all protocol work).
"""
