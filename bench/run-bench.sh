#!/bin/sh
# `make bench`: Postern and Postfix side by side on loopback, with the
# scripts of ../shared/bench, run alternately (A B A B ...) so that each
# figure is a ratio measured in one session (see ../shared/bench/README.md).
#   1. disk: durable 4 KiB writes/s (the physical limit)
#   2. durable accept throughput, 4 KiB and 19 KiB, 1/10/50 sessions
#   3. full sessions/s with and without STARTTLS (connect, EHLO, STARTTLS,
#      EHLO, MAIL, RCPT, DATA 4 KiB, QUIT; RSA-2048 self-signed on both
#      sides), 10 and 40 parallel clients (run-tls.sh)
#   4. memory per idle connection (Postfix: 500 conns, a process each;
#      Postern: 500 conns, then 10,000 at once)
# env: REPS (3) COUNT (10000 messages per run) DISK_REPS (2) TLS_COUNT (3000)
#      SKIP_ACCEPT SKIP_TLS SKIP_IDLE SKIP_DISK
# Results: build/bench/results/, summary at the end.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
SB=$(cd "$TOP/../shared/bench" && pwd)
export BENCH_OUT="$TOP/build/bench"
REPS=${REPS:-3}
COUNT=${COUNT:-10000}
PF_PORT=2525
PN_PORT=2600
R=$BENCH_OUT/results
mkdir -p "$R"
rm -f "$R"/source-pf-*.txt "$R"/source-pn-*.txt "$R"/tls-pf-*.txt "$R"/tls-pn-*.txt
ulimit -n 65536 2>/dev/null || echo "warning: cannot raise the fd limit" >&2

pf() { PORT=$PF_PORT sh "$SB/server-postfix.sh" "$@"; }
pn() { PORT=$PN_PORT sh "$TOP/bench/server-postern.sh" "$@"; }

if [ -z "${SKIP_DISK:-}" ]; then
	echo "== disk"
	REPS=${DISK_REPS:-2} sh "$SB/disk-fsync.sh" "$BENCH_OUT/disk" 2>&1 | tail -n 8 | tee "$R/disk.txt"
fi

pn stop >/dev/null 2>&1 || true
pf setup >/dev/null
pf stop
[ -z "${SKIP_ACCEPT:-}" ] && echo "== durable accept throughput (count $COUNT, $REPS rounds, alternating)"
[ -z "${SKIP_ACCEPT:-}" ] && for r in $(seq 1 "$REPS"); do
	pf restart
	PORT=$PF_PORT REPS=1 COUNT=$COUNT COUNT_C1=$((COUNT / 2)) LABEL=pf-$r \
	    sh "$SB/run-source.sh" accept | grep '^label=' | grep 'port=' || true
	pf stop
	pn setup
	PORT=$PN_PORT SERVER="$TOP/bench/server-postern.sh" REPS=1 COUNT=$COUNT \
	    COUNT_C1=$((COUNT / 2)) LABEL=pn-$r \
	    sh "$SB/run-source.sh" accept | grep '^label=' | grep 'port=' || true
	pn stop
done

if [ -z "${SKIP_TLS:-}" ]; then
	echo "== sessions/s with and without STARTTLS ($REPS rounds, alternating)"
	for r in $(seq 1 "$REPS"); do
		pf restart
		BENCH_OUT="$BENCH_OUT/tls-pf" PORT=$PF_PORT REPS=1 \
		    COUNT=${TLS_COUNT:-3000} sh "$SB/run-tls.sh" >/dev/null
		cp "$BENCH_OUT/tls-pf/results/tls.txt" "$R/tls-pf-$r.txt"
		cat "$R/tls-pf-$r.txt"
		pf stop
		pn setup
		BENCH_OUT="$BENCH_OUT/tls-pn" PORT=$PN_PORT \
		    SERVER="$TOP/bench/server-postern.sh" REPS=1 \
		    COUNT=${TLS_COUNT:-3000} sh "$SB/run-tls.sh" >/dev/null
		cp "$BENCH_OUT/tls-pn/results/tls.txt" "$R/tls-pn-$r.txt"
		cat "$R/tls-pn-$r.txt"
		pn stop
	done
fi

if [ -z "${SKIP_IDLE:-}" ]; then
	echo "== memory per idle connection"
	pf restart
	PORT=$PF_PORT REPS=1 CONNS=500 LABEL=idle-pf sh "$SB/run-idle.sh" | grep -E "kib_per_conn|label=" || true
	pf stop
	pn setup
	PORT=$PN_PORT SERVER="$TOP/bench/server-postern.sh" REPS=1 CONNS=500 \
	    PROCLIMIT=600 LABEL=idle-pn sh "$SB/run-idle.sh" | grep -E "kib_per_conn|label=" || true
	PORT=$PN_PORT sh "$TOP/bench/idle-10k.sh" | tee "$R/idle-10k.txt"
	pn stop
fi

echo "== summary (medians; ratio = Postern / Postfix)"
/usr/bin/python3 "$TOP/bench/ratios.py" "$R"
