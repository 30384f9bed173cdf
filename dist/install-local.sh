#!/bin/sh
# install-local.sh - the part of `meson install` that meson's own install
# machinery cannot do (run through meson.add_install_script):
#   - the example configuration becomes CONFDIR/postern.conf only when no
#     such file exists: an admin's configuration is never overwritten;
#   - the data and log directories are made;
#   - installing for real (no DESTDIR) as root: the system user `postern`
#     is created when missing and given the data and log directories.
# Under DESTDIR (a package build) no user is made and nothing is chowned:
# the package's postinst does that on the target machine.
# meson shows a script's output only when it fails, so what it did also
# goes to meson-logs/install-local.txt, which `make install` prints.
# Usage: install-local.sh EXAMPLE CONFDIR DATADIR LOGDIR
set -eu
example=$1 confdir=$2 datadir=$3 logdir=$4
d=${DESTDIR:-}
conf="$d$confdir/postern.conf"
report=${MESON_BUILD_ROOT:+$MESON_BUILD_ROOT/meson-logs/install-local.txt}
[ -z "$report" ] || : > "$report"
say() {
	echo "postern: $*"
	[ -z "$report" ] || echo "postern: $*" >> "$report"
}

install -d -m 0755 "$d$confdir"
if [ -e "$conf" ] || [ -L "$conf" ]; then
	say "kept the existing $conf"
else
	install -m 0644 "$example" "$conf"
	say "installed the example configuration as $conf" \
	    "(set hostname, then start postern)"
fi
install -d -m 0700 "$d$datadir"
install -d -m 0750 "$d$logdir"

[ -z "$d" ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
	say "not root: $datadir and $logdir keep their owner;" \
	    "give them to the user postern (adduser --system --group postern)"
	exit 0
fi
if ! getent passwd postern >/dev/null; then
	if command -v adduser >/dev/null 2>&1; then
		adduser --system --group --home "$datadir" --no-create-home \
		    --quiet postern
	else
		useradd --system --user-group --home-dir "$datadir" \
		    --no-create-home --shell /usr/sbin/nologin postern
	fi
	say "created the system user postern"
fi
chown postern:postern "$datadir"
if getent group adm >/dev/null; then
	chown postern:adm "$logdir"
else
	chown postern:postern "$logdir"
fi
