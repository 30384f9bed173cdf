#!/bin/sh
# Install the Debian packages given as arguments that are not installed yet.
# postfix is preseeded to "No configuration" so no system MTA starts on
# port 25 (the tests bind their own peers on 127.0.0.x).
set -eu
missing=""
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian may start postfix after installing it; it must not hold port 25.
if command -v postfix >/dev/null 2>&1; then $SUDO postfix stop >/dev/null 2>&1 || true; fi
