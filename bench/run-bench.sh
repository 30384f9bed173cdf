#!/bin/sh
# `make bench`: Postern and Postfix side by side on loopback, with the
# scripts of ../shared/bench, run alternately (A B A B ...) so that each
# figure is a ratio measured in one session (see ../shared/bench/README.md).
#   1. disk: durable 4 KiB writes/s (the physical limit)
#   2. durable accept throughput, 4 KiB and 19 KiB, 1/10/50 sessions
#   3. relay end to end: smtp-source -> server -> smtp-sink on
#      127.0.0.1:$SINK_PORT (2526) until the server's queue is empty,
#      4 KiB, 10 and 50 sessions (run-source.sh relay, one run per
#      session count under a watchdog: a run that has not drained after
#      RELAY_MAX_SECONDS, or whose sink has received nothing for
#      RELAY_STALL seconds, is killed and reported as unfinished)
#   4. full sessions/s with and without STARTTLS (connect, EHLO, STARTTLS,
#      EHLO, MAIL, RCPT, DATA 4 KiB, QUIT; RSA-2048 self-signed on both
#      sides), 10 and 40 parallel clients (run-tls.sh)
#   5. memory per idle connection (Postfix: 500 conns, a process each;
#      Postern: 500 conns, then 10,000 at once)
# env: REPS (3) COUNT (10000 messages per run) DISK_REPS (2) TLS_COUNT (3000)
#      RELAY_COUNT (5000 messages per relay run) RELAY_CONCS ("10 50")
#      RELAY_MAX_SECONDS (60 + RELAY_COUNT / 20) RELAY_STALL (45)
#      SKIP_ACCEPT SKIP_RELAY SKIP_TLS SKIP_IDLE SKIP_DISK
# Results: build/bench/results/, summary at the end.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
SB=$(cd "$TOP/../shared/bench" && pwd)
export BENCH_OUT="$TOP/build/bench"
REPS=${REPS:-3}
COUNT=${COUNT:-10000}
RELAY_COUNT=${RELAY_COUNT:-5000}
RELAY_CONCS=${RELAY_CONCS:-"10 50"}
RELAY_MAX_SECONDS=${RELAY_MAX_SECONDS:-$((60 + RELAY_COUNT / 20))}
RELAY_STALL=${RELAY_STALL:-45}
PF_PORT=2525
PN_PORT=2600
R=$BENCH_OUT/results
B=$BENCH_OUT/build	# sink.sh keeps smtp-sink's pid and output here
mkdir -p "$R" "$B"
rm -f "$R"/source-pf-*.txt "$R"/source-pn-*.txt "$R"/tls-pf-*.txt "$R"/tls-pn-*.txt \
    "$R"/source-relay-*.txt
ulimit -n 65536 2>/dev/null || echo "warning: cannot raise the fd limit" >&2

pf() { PORT=$PF_PORT sh "$SB/server-postfix.sh" "$@"; }
pn() { PORT=$PN_PORT sh "$TOP/bench/server-postern.sh" "$@"; }
sink() { sh "$SB/sink.sh" "$@"; }

# smtp-sink: sink.sh stop sends SIGTERM by pid; wait for it (bounded).
sink_stop() {
	sp=$(cat "$B/sink.pid" 2>/dev/null || true)
	sink stop
	[ -n "$sp" ] || return 0
	i=0
	while kill -0 "$sp" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$sp" 2>/dev/null || true
}

# Nothing stays running, also when interrupted: the relay run in progress
# (its own process group), the sink, both servers.
RELAY_PG=
cleanup() {
	trap - EXIT INT TERM
	if [ -n "$RELAY_PG" ]; then kill -KILL "-$RELAY_PG" "$RELAY_PG" 2>/dev/null || true; fi
	sink_stop >/dev/null 2>&1 || true
	pn stop >/dev/null 2>&1 || true
	pf stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# relay_one pf|pn ROUND CONC: one `run-source.sh relay` run (RELAY_COUNT
# messages of 4 KiB over CONC sessions, timed until the sink has them all
# and the queue is empty), in a process group of its own under a watchdog.
# run-source.sh's own wait (srcload.py) is 600 s per run; the watchdog ends
# a run sooner: after RELAY_MAX_SECONDS in all, or after RELAY_STALL seconds
# in which the sink received nothing while messages are missing (e.g. the
# server queues but does not deliver).  A run ended that way gets a line
# with unfinished=timeout|stalled (and no msg/s figure) in its result file;
# ratios.py counts only runs that drained completely.
relay_one() {
	if [ "$1" = pf ]; then port=$PF_PORT; srv=$SB/server-postfix.sh
	else port=$PN_PORT; srv=$TOP/bench/server-postern.sh; fi
	label=relay-$1-$2-c$3
	base=$(sink count)
	t0=$(date +%s)
	rm -f "$B/$label.rc"
	PORT=$port SERVER=$srv REPS=1 CONCS=$3 SIZES=4096 COUNT=$RELAY_COUNT \
	    LABEL=$label setsid sh -c 'sh "$1" relay; echo $? > "$2"' sh \
	    "$SB/run-source.sh" "$B/$label.rc" > "$B/$label.log" 2>&1 &
	# setsid makes the background child (not a group leader, so setsid
	# does not fork) the leader of a new session and process group: the
	# whole run.  The group exists only once the child has called setsid,
	# so the loop watches the pid and signals the group only later.
	RELAY_PG=$!
	last=$base; tlast=$t0; why=
	while sleep 1; [ ! -s "$B/$label.rc" ] && kill -0 "$RELAY_PG" 2>/dev/null; do
		now=$(date +%s); got=$(sink count)
		if [ "$got" != "$last" ]; then last=$got; tlast=$now; fi
		if [ $((now - t0)) -ge "$RELAY_MAX_SECONDS" ]; then why=timeout; break; fi
		if [ $((got - base)) -lt "$RELAY_COUNT" ] &&
		    [ $((now - tlast)) -ge "$RELAY_STALL" ]; then why=stalled; break; fi
	done
	if [ -n "$why" ]; then
		kill -TERM "-$RELAY_PG" "$RELAY_PG" 2>/dev/null || true
		i=0
		while kill -0 "-$RELAY_PG" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "-$RELAY_PG" 2>/dev/null || true
	fi
	wait "$RELAY_PG" 2>/dev/null || true
	RELAY_PG=
	grep '^label=' "$B/$label.log" | grep 'port=' || true
	if [ -z "$why" ] && [ "$(cat "$B/$label.rc" 2>/dev/null)" != 0 ]; then
		why=failed
		tail -n 5 "$B/$label.log" >&2
	fi
	if [ -n "$why" ]; then
		got=$(($(sink count) - base))
		q=$(PORT=$port sh "$srv" qcount 2>/dev/null || true)
		echo "label=$label port=$port conc=$3 size=4096 count=$RELAY_COUNT" \
		    "unfinished=$why secs_total=$(($(date +%s) - t0))" \
		    "sink_count=$got queue_left=${q:--1}" | tee -a "$R/source-$label.txt"
		PORT=$port sh "$srv" clean >/dev/null 2>&1 || true
	fi
}

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

if [ -z "${SKIP_RELAY:-}" ]; then
	echo "== relay end to end to smtp-sink (count $RELAY_COUNT, 4 KiB, sessions" \
	    "$RELAY_CONCS, $REPS rounds, alternating; a run is given up after" \
	    "${RELAY_MAX_SECONDS} s, or ${RELAY_STALL} s without a delivery)"
	sink_stop
	if sink start; then
		for r in $(seq 1 "$REPS"); do
			pf restart
			for c in $RELAY_CONCS; do relay_one pf "$r" "$c"; done
			pf stop
			pn setup
			for c in $RELAY_CONCS; do relay_one pn "$r" "$c"; done
			pn stop
		done
	else
		echo "cannot start smtp-sink on 127.0.0.1:${SINK_PORT:-2526}: no relay figures" >&2
	fi
	sink_stop
fi

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

[ -n "${SKIP_INJECT:-}" ] || sh "$TOP/bench/bench-inject.sh" | tee "$R/inject.txt"
[ -n "${SKIP_DKIM:-}" ] || sh "$TOP/bench/bench-dkim.sh" | tee "$R/dkim.txt"

echo "== summary (medians; ratio = Postern / Postfix)"
/usr/bin/python3 "$TOP/bench/ratios.py" "$R"
