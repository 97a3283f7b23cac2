"""Allow ``python -m mailseal``."""

from mailseal.cli.main import main

main()
