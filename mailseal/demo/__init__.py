"""What ``mailseal demo`` runs besides the milter: a private Postfix and a catcher.

``postfix``: a private Postfix instance on loopback (``postfix -c DIR``), its
own configuration, queue and log, never /etc/postfix. ``catcher``: an aiosmtpd
server that keeps what Postfix delivers to it. The real-Postfix integration
tests build on the same two modules.
"""
