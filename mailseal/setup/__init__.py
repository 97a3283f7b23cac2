"""``mailseal setup``: the tutorial's OpenDKIM setup in one idempotent command.

``layout`` names the files and the settings; ``conffile`` and ``tables`` merge
what is wanted into what is there (text in, text out); ``plan`` turns a
snapshot of the files into the actions that make them right (nothing when
they already are); ``records`` works out the DNS records to publish, asking
its DNS questions as a generator. ``apply`` is the shell: it reads the
snapshot, generates missing keys, writes files and sets owners.
"""
