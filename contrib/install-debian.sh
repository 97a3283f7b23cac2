#!/bin/sh
# Install mailseal as the system's DKIM milter on Debian 12, in place of OpenDKIM.
#   sh contrib/install-debian.sh [--switch]
# Without --switch it installs and checks the config, but leaves opendkim running.
# With --switch it stops and disables opendkim and starts mailseal-milter.
# Debian's pip refuses system-wide installs (PEP 668), so mailseal goes into a
# virtualenv under /opt/mailseal; nothing else on the system changes.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=${MAILSEAL_PREFIX:-/opt/mailseal}
switch=no
[ "${1:-}" = "--switch" ] && switch=yes

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
if ! python3 -m venv --help >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq python3-venv
fi
[ -x "$prefix/bin/python" ] || python3 -m venv "$prefix"
"$prefix/bin/pip" install -q --upgrade "$src"

# Reuse the opendkim user (it owns the keys of a tutorial setup); else make one.
if ! id opendkim >/dev/null 2>&1; then
  adduser --system --group --no-create-home --home /run/opendkim opendkim
fi
if [ -f /etc/opendkim.conf ]; then
  "$prefix/bin/mailseal" milter -n -x /etc/opendkim.conf
else
  echo "no /etc/opendkim.conf yet: write one (see docs/milter.md) before starting" >&2
fi
install -m 0644 "$src/contrib/mailseal-milter.service" /etc/systemd/system/mailseal-milter.service
sed -i "s#/opt/mailseal#$prefix#g" /etc/systemd/system/mailseal-milter.service
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$switch" = yes ]; then
    systemctl disable --now opendkim 2>/dev/null || true
    systemctl enable --now mailseal-milter
    systemctl --no-pager status mailseal-milter | head -5
  fi
fi
echo "installed mailseal in $prefix; unit: mailseal-milter.service"
[ "$switch" = yes ] || echo "to switch: systemctl disable --now opendkim && systemctl enable --now mailseal-milter"
