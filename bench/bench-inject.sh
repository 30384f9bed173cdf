#!/bin/sh
# Injection benchmark (part of `make bench`, self-contained): `postern
# send --count N --concurrency C` against Postfix's smtp-sink, side by
# side with Postfix's smtp-source sending a 4 KiB message with the same
# concurrency (-d: many messages per connection, like postern send), run
# alternately (A B A B ...), medians; then postern send with STARTTLS vs
# plaintext, both against the same sink, bench/injectsink.c (smtp-sink
# has no TLS; one C event loop, RSA-2048 self-signed like the other TLS
# sections), with the client's and the sink's CPU per message, and the
# sink's own count of the messages it took.  Targets: ratio
# postern/smtp-source >= 1.0, STARTTLS >= 0.8 x plaintext.  Loopback
# only; nothing is left running.
# env: INJECT_COUNT (20000) INJECT_CONCS ("10 50") INJECT_REPS (3)
#      INJECT_PARTS ("source tls": the smtp-source comparison, the TLS one)
set -eu
# lib.sh builds the C tools (the sink, bench/injectsink.c) into $BIN
. "$(dirname "$0")/lib.sh"
build_tools
TOP=$(cd "$(dirname "$0")/.." && pwd)
PN=${POSTERN_BIN:-$TOP/build/postern}
COUNT=${INJECT_COUNT:-20000}
CONCS=${INJECT_CONCS:-"10 50"}
REPS=${INJECT_REPS:-3}
PARTS=" ${INJECT_PARTS:-source tls} "
SINK=/usr/sbin/smtp-sink
SOURCE=/usr/sbin/smtp-source
W=$(mktemp -d /tmp/postern-inject.XXXXXX)
PIDS=
cleanup() {
	# the sinks
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $PIDS; do
		i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	done
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
for b in "$PN" "$SINK" "$SOURCE"; do
	[ -x "$b" ] || { echo "bench-inject: $b missing (make build / make deps)" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || true
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { awk -v n="$COUNT" -v a="$1" -v b="$2" 'BEGIN { printf "%.0f\n", (b > a ? n / (b - a) : 0) }'; }
wait_port() { /usr/bin/python3 -c 'import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close(); break
    except OSError:
        time.sleep(0.1)' "$1"; }
median() { tr ' ' '\n' | sort -n | awk 'NF { a[n++] = $1 } END { print (n ? a[int((n - 1) / 2)] : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", (b > 0 ? a / b : 0) }'; }

# the 4 KiB message (smtp-source -l 4096 sends the same size)
/usr/bin/python3 - "$W/msg.eml" <<'PY'
import sys
head = ("From: bench@example.org\r\nTo: sink@example.net\r\n"
        "Subject: injection benchmark\r\n\r\n")
line = "x" * 70 + "\r\n"
body = line * ((4096 - len(head)) // len(line))
body += "y" * (4096 - len(head) - len(body) - 2) + "\r\n"
open(sys.argv[1], "w", newline="").write(head + body)
PY

# run a command; print "msgs/s cpu-us-per-msg" (wall clock, the command's
# user + system CPU)
measure() { /usr/bin/python3 -c 'import resource, subprocess, sys, time
n = int(sys.argv[1]); t = time.monotonic()
rc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL).returncode
w = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
if rc != 0:
    print("failed: exit %d" % rc, file=sys.stderr)
print("%.0f %.0f" % (n / w, (r.ru_utime + r.ru_stime) * 1e6 / n))' "$COUNT" "$@"; }

run_pn() {	# $1 port, $2 concurrency, rest: extra options
	p=$1; c=$2; shift 2
	SMTP_HOST=127.0.0.1 SMTP_PORT=$p measure timeout 600 "$PN" send \
	    "$W/msg.eml" --count "$COUNT" --concurrency "$c" --quiet "$@"
}
run_src() {	# $1 concurrency
	measure timeout 600 $SOURCE -d -s "$1" -m "$COUNT" -l 4096 \
	    -f bench@example.org -t sink@example.net 127.0.0.1:$SPORT
}

case $PARTS in *" source "*)
	SPORT=$(free_port)
	user=""; [ "$(id -u)" -eq 0 ] && user="-u root"
	setsid $SINK $user -a -C -F 127.0.0.1:$SPORT 1000 >"$W/sink.log" 2>&1 &
	PIDS="$PIDS $!"
	wait_port "$SPORT"
	echo "== injection: postern send vs smtp-source, $COUNT x 4 KiB to smtp-sink ($REPS rounds, alternating)"
	for c in $CONCS; do
		pn_all=""; src_all=""; pnc=""; srcc=""
		for r in $(seq 1 "$REPS"); do
			set -- $(run_pn "$SPORT" "$c"); a=$1; ac=$2
			set -- $(run_src "$c"); b=$1; bc=$2
			echo "  concurrency $c round $r: postern send $a msg/s ($ac us CPU/msg), smtp-source $b msg/s ($bc us CPU/msg)"
			pn_all="$pn_all $a"; src_all="$src_all $b"; pnc="$pnc $ac"; srcc="$srcc $bc"
		done
		ma=$(echo $pn_all | median); mb=$(echo $src_all | median)
		echo "inject concurrency $c: postern send $ma msg/s ($(echo $pnc | median) us CPU/msg), smtp-source $mb msg/s ($(echo $srcc | median) us CPU/msg), ratio $(ratio "$ma" "$mb") (target >= 1.0)"
	done
	;;
esac

case $PARTS in *" tls "*) ;; *) exit 0 ;; esac
# STARTTLS vs plaintext, both against the same C sink
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/sink.key" \
    -out "$W/sink.pem" -days 2 -subj /CN=sink.bench >/dev/null 2>&1
TPORT=$(free_port)
setsid "$BIN/injectsink" --port "$TPORT" --cert "$W/sink.pem" \
    --key "$W/sink.key" >"$W/tsink.out" 2>"$W/tsink.err" &
TSINK=$!
PIDS="$PIDS $TSINK"
wait_port "$TPORT"
# sink_count: messages the sink has taken so far (SIGUSR1: it prints a line)
sink_count() {
	n0=$(wc -l < "$W/tsink.out")
	kill -USR1 "$TSINK"
	i=0
	while [ "$(wc -l < "$W/tsink.out")" -le "$n0" ] && [ $i -lt 50 ]; do
		sleep 0.1; i=$((i + 1))
	done
	tail -n 1 "$W/tsink.out" | sed -n 's/^messages=\([0-9]*\) .*/\1/p'
}
sink_ticks() { awk '{ print $14 + $15 }' "/proc/$TSINK/stat"; }
# run_tls PORT CONC OPTIONS...: "msgs/s client-us sink-us"; a run whose
# messages the sink did not all take reports 0 msg/s
run_tls() {
	p=$1; c=$2; shift 2
	m0=$(sink_count); t0=$(sink_ticks)
	set -- $(run_pn "$p" "$c" "$@")
	t1=$(sink_ticks); m1=$(sink_count)
	r=$1
	if [ $((m1 - m0)) -ne "$COUNT" ]; then
		echo "bench-inject: the sink took $((m1 - m0)) of $COUNT messages" >&2
		r=0
	fi
	echo "$r $2 $(awk -v a="$t0" -v b="$t1" -v n="$COUNT" -v hz="$(getconf CLK_TCK)" \
	    'BEGIN { printf "%.0f", (b - a) / hz * 1e6 / n }')"
}
echo "== injection: postern send STARTTLS vs plaintext, $COUNT x 4 KiB to injectsink ($REPS rounds, alternating)"
for c in $CONCS; do
	pl_all=""; tl_all=""; plc=""; tlc=""; pls=""; tls=""
	for r in $(seq 1 "$REPS"); do
		set -- $(run_tls "$TPORT" "$c" --plain); a=$1; ac=$2; as=$3
		set -- $(run_tls "$TPORT" "$c" --starttls --insecure); b=$1; bc=$2; bs=$3
		echo "  concurrency $c round $r: plaintext $a msg/s (CPU/msg: client $ac us, sink $as us), STARTTLS $b msg/s (client $bc us, sink $bs us)"
		pl_all="$pl_all $a"; tl_all="$tl_all $b"; plc="$plc $ac"; tlc="$tlc $bc"
		pls="$pls $as"; tls="$tls $bs"
	done
	ma=$(echo $pl_all | median); mb=$(echo $tl_all | median)
	mac=$(echo $plc | median); mbc=$(echo $tlc | median)
	echo "inject TLS concurrency $c: plaintext $ma msg/s, STARTTLS $mb msg/s, ratio $(ratio "$mb" "$ma") (target >= 0.8); CPU/msg plaintext vs STARTTLS: client $mac vs $mbc us, sink $(echo $pls | median) vs $(echo $tls | median) us"
done
