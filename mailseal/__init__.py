"""mailseal: mail authentication for self-hosted mail servers."""

__version__ = "0.1.0"
