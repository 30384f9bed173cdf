#!/bin/sh
# Section "accept" of `make bench` (bench/README.md): durable accept
# throughput with delivery held (adapter mode hold: every message is
# queued and fsynced before its 250, nothing is delivered), 4 KiB and
# 19 KiB bodies, 1/10/50 sessions at once, one message per session
# (connect, EHLO, MAIL, RCPT, DATA, QUIT), Postfix and Postern alternately.
# Figures per run: msgs_per_s (250s / wall time), cpu_ms_per_msg (CPU of
# the whole server tree / messages), lat_p50_ms and lat_p99_ms (MAIL to
# the 250 after the dot).  After each run the queue must hold every
# acknowledged message, or the run is marked unfinished.
# env: COUNT (10000 messages per run) COUNT_C1 (COUNT / 2, for 1 session)
#      ACCEPT_SIZES ("4096 19456") ACCEPT_CONCS ("1 10 50")
#      ACCEPT_CLIENTS ("loadgen"; add smtp-source for the postfix
#      package's own client as an independent cross-check)
#      ACCEPT_MAX_SECONDS (600 per run)
set -eu
. "$(dirname "$0")/lib.sh"
COUNT=${COUNT:-10000}
COUNT_C1=${COUNT_C1:-$((COUNT / 2))}
ACCEPT_MAX_SECONDS=${ACCEPT_MAX_SECONDS:-600}
bench_init accept "durable accept throughput, delivery held ($COUNT messages per run, $((COUNT_C1)) with 1 session)"

# smtp_source SIDE N CONC SIZE: the postfix package's client, timed here;
# prints a line like loadgen's (ok = N when it exits 0).
smtp_source() {
	local t0 t1 rc=0
	t0=$(now)
	bounded "$ACCEPT_MAX_SECONDS" smtp-source -s "$3" -m "$2" -l "$4" \
	    -f bench@example.org -t sink@example.com -M bench.example.org \
	    "127.0.0.1:$(side_port "$1")" >> "$L/smtp-source.log" 2>&1 || rc=$?
	t1=$(now)
	awk -v n="$2" -v s="$(elapsed "$t0" "$t1")" -v rc="$rc" 'BEGIN {
	    printf "ok=%d secs=%.3f msgs_per_s=%.1f\n", rc ? 0 : n, s, rc ? 0 : n / s }'
}

accept_run() {
	local side=$1 round=$2 size conc n client line cpu0 cpu1 ok q
	server "$side" stop
	server "$side" mode hold
	server "$side" tls off
	server "$side" restart
	for size in ${ACCEPT_SIZES:-4096 19456}; do
		for conc in ${ACCEPT_CONCS:-1 10 50}; do
			n=$COUNT
			[ "$conc" -eq 1 ] && n=$COUNT_C1
			for client in ${ACCEPT_CLIENTS:-loadgen}; do
				server "$side" clean
				settle
				cpu0=$(tree_cpu "$side")
				if [ "$client" = smtp-source ]; then
					line=$(smtp_source "$side" "$n" "$conc" "$size")
				else
					line=$(loadgen "$side" send --sessions "$conc" \
					    --count "$n" --size "$size" \
					    --max-seconds "$ACCEPT_MAX_SECONDS" \
					    --label "accept-$side-$round") || true
				fi
				cpu1=$(tree_cpu "$side")
				ok=$(field ok "$line")
				q=$(server "$side" qcount)
				id="side=$(side_name "$side") round=$round size=$size sessions=$conc client=$client"
				if [ "${ok:-0}" != "$n" ] || [ "$q" -lt "$n" ]; then
					say "  $id: $ok of $n acknowledged, $q queued: $line"
					record $id -- unfinished=failed
					continue
				fi
				if [ "$client" = smtp-source ]; then
					record $id -- msgs_per_s="$(field msgs_per_s "$line")" \
					    cpu_ms_per_msg="$(per_item "$cpu0" "$cpu1" "$n")"
				else
					record $id -- msgs_per_s="$(field msgs_per_s "$line")" \
					    cpu_ms_per_msg="$(per_item "$cpu0" "$cpu1" "$n")" \
					    lat_p50_ms="$(field lat_p50_ms "$line")" \
					    lat_p99_ms="$(field lat_p99_ms "$line")"
				fi
			done
		done
	done
	server "$side" clean
	server "$side" stop
}

alternate accept_run
