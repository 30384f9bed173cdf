#!/bin/sh
# Server adapter for Postfix 3.7 (Debian package `postfix`) in `make bench`
# (bench/README.md): a throwaway instance of its own, never the system's.
# `postfix -c $PF_DIR/etc` with a main.cf and master.cf written here, queue
# in $PF_DIR/spool, log in $PF_DIR/maillog; smtpd on 127.0.0.1:$PORT only;
# /etc/postfix and /var/spool/postfix are not touched (postmulti is not
# used: no instance is registered anywhere).
#
#   setup            certificate (RSA-2048 self-signed), config, (re)start
#   mode hold|defer|relay
#                    hold:  smtpd_client_restrictions = check_client_access
#                           static:HOLD - cleanup files every message in the
#                           hold queue (fsynced before the 250, like any
#                           queue file) and the queue manager never sees it:
#                           accept and queue durably, deliver nothing
#                    defer: defer_transports = smtp (the queue manager
#                           takes each message and defers it)
#                    relay: deliver everything to relayhost
#                           [127.0.0.1]:$SINK_PORT
#   tls on|off       offer STARTTLS (smtpd_tls_security_level may/none)
#   proclimit N      default_process_limit = N (a process per connection;
#                    the smtpd listen backlog follows it)
#   restart | stop | clean | qcount | pid
#                    clean: postsuper -d ALL; qcount: queue files in
#                    maildrop incoming active deferred hold; pid: the
#                    master (root of the whole server tree)
# mode, tls and proclimit restart the instance if it runs (the master
# sizes the listen backlog only when it creates the socket).
# env: PORT (2525) SINK_PORT (2526) PF_DIR (build/bench/run/postfix)
# Differences from Debian's stock master.cf: no chroot (the instance has
# no chroot files), no pickup/local/virtual/pipe services (nothing uses
# them).  Same durability as stock Postfix: cleanup fsyncs the queue file
# before smtpd answers 250.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PORT:-2525}
SINK_PORT=${SINK_PORT:-2526}
D=${PF_DIR:-$HERE/../build/bench/run/postfix}
mkdir -p "$D"
D=$(cd "$D" && pwd)
ETC=$D/etc
SPOOL=$D/spool
mkdir -p "$ETC" "$SPOOL" "$D/data"
chown postfix "$D/data" 2>/dev/null || true
[ -f "$D/mode" ] || echo hold > "$D/mode"
[ -f "$D/tls" ] || echo off > "$D/tls"
[ -f "$D/limit" ] || echo 100 > "$D/limit"

pf() { postfix -c "$ETC" "$@"; }

write_conf() {
	hold=; defer=; tls=none
	case $(cat "$D/mode") in
	hold) hold="check_client_access static:HOLD" ;;
	defer) defer=smtp ;;
	esac
	[ "$(cat "$D/tls")" = on ] && tls=may
	cat > "$ETC/main.cf" <<EOF
# written by bench/server-postfix.sh for \`make bench\`; throwaway
compatibility_level = 3.6
queue_directory = $SPOOL
data_directory = $D/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mta-bench.localdomain
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_restrictions = $hold
defer_transports = $defer
biff = no
append_dot_mydomain = no
maillog_file = $D/maillog
maillog_file_prefixes = $D
smtpd_tls_cert_file = $ETC/bench.pem
smtpd_tls_key_file = $ETC/bench.key
smtpd_tls_security_level = $tls
smtp_tls_security_level = none
default_process_limit = $(cat "$D/limit")
default_destination_concurrency_limit = 20
EOF
	# service type private unpriv chroot wakeup maxproc command
	cat > "$ETC/master.cf" <<EOF
127.0.0.1:$PORT inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

cert() {
	[ -s "$ETC/bench.key" ] && return 0
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
	    -subj "/CN=mta-bench.localdomain" -keyout "$ETC/bench.key" \
	    -out "$ETC/bench.pem" 2>/dev/null
	chmod 600 "$ETC/bench.key"
}

pidof_master() {
	[ -s "$SPOOL/pid/master.pid" ] || return 0
	p=$(tr -d ' \n' < "$SPOOL/pid/master.pid")
	kill -0 "$p" 2>/dev/null && echo "$p"
	return 0
}

start() {
	command -v postfix >/dev/null || {
		echo "postfix is not installed (make deps installs it)" >&2; exit 1; }
	cert
	write_conf
	touch "$D/maillog"
	pf check >/dev/null 2>&1 || { echo "postfix check failed for $ETC:" >&2;
		tail -n 5 "$D/maillog" >&2; exit 1; }
	pf start >/dev/null 2>&1 || true
	i=0
	until python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null &&
	    [ -n "$(pidof_master)" ]; do
		i=$((i + 1))
		if [ $i -ge 150 ]; then
			echo "postfix ($ETC) did not start on 127.0.0.1:$PORT:" >&2
			tail -n 5 "$D/maillog" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# stop: `postfix stop`, then SIGKILL for the master's process group (the
# master is a session leader; every daemon is in its group) after 15 s.
stop() {
	pid=$(pidof_master)
	[ -n "$pid" ] || return 0
	pf stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$pid" 2>/dev/null; then
		echo "postfix master (pid $pid) did not stop in 15 s: SIGKILL" >&2
		kill -KILL "-$pid" "$pid" 2>/dev/null || true
	fi
	# the daemons leave when the master does; wait for them (bounded)
	i=0
	while kill -0 "-$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "-$pid" 2>/dev/null || true
	rm -f "$SPOOL/pid/master.pid"
}

running() { [ -n "$(pidof_master)" ]; }

case "${1:-}" in
setup)	stop; start ;;
mode)	case "${2:-}" in hold|defer|relay) echo "$2" > "$D/mode" ;;
	*) echo "mode hold|defer|relay" >&2; exit 2 ;; esac
	if running; then stop; start; fi ;;
tls)	case "${2:-}" in on|off) echo "$2" > "$D/tls" ;;
	*) echo "tls on|off" >&2; exit 2 ;; esac
	if running; then stop; start; fi ;;
proclimit) echo "${2:?N}" > "$D/limit"
	if running; then stop; start; fi ;;
restart) stop; start ;;
stop)	stop ;;
clean)	postsuper -c "$ETC" -d ALL >/dev/null 2>&1 || true ;;
qcount)	n=0
	for q in maildrop incoming active deferred hold; do
		c=$(find "$SPOOL/$q" -type f 2>/dev/null | wc -l)
		n=$((n + c))
	done
	echo "$n" ;;
pid)	pidof_master ;;
*)	sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 2 ;;
esac
