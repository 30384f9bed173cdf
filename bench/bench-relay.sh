#!/bin/sh
# Section "relay" of `make bench` (bench/README.md): end to end, load ->
# server -> smtp-sink (postfix package) on 127.0.0.1:$SINK_PORT, 4 KiB
# messages, one per session, RELAY_CONCS sessions at once, timed from the
# first connection until the sink has every message and the server's queue
# is empty; Postfix and Postern alternately.
# Figures per run: e2e_msgs_per_s, accept_msgs_per_s (the load's own
# rate), cpu_ms_per_msg (CPU of the whole server tree from the first
# connection to the empty queue / messages: accept + queue + delivery).
# Watchdog: a run is given up after RELAY_MAX_SECONDS, or after RELAY_STALL
# seconds in which the sink received nothing while messages are missing
# (e.g. a server that queues but does not deliver); it is recorded as
# unfinished=timeout|stalled|failed and not counted in the medians.
# env: RELAY_COUNT (5000 messages per run) RELAY_CONCS ("10 50")
#      RELAY_SIZE (4096) RELAY_MAX_SECONDS (60 + RELAY_COUNT / 20)
#      RELAY_STALL (45)
set -eu
. "$(dirname "$0")/lib.sh"
RELAY_COUNT=${RELAY_COUNT:-5000}
RELAY_SIZE=${RELAY_SIZE:-4096}
RELAY_MAX_SECONDS=${RELAY_MAX_SECONDS:-$((60 + RELAY_COUNT / 20))}
RELAY_STALL=${RELAY_STALL:-45}
bench_init relay "relay end to end to smtp-sink ($RELAY_COUNT messages of $RELAY_SIZE bytes per run; given up after $RELAY_MAX_SECONDS s, or $RELAY_STALL s without a delivery)"

relay_one() {
	local side=$1 round=$2 conc=$3 id
	id="side=$(side_name "$side") round=$round size=$RELAY_SIZE sessions=$conc"
	relay_once "$side" "$conc"
	if [ -n "$WHY" ]; then
		record $id -- unfinished="$WHY"
		return
	fi
	record $id -- e2e_msgs_per_s="$E2E" accept_msgs_per_s="$ACCEPT" \
	    cpu_ms_per_msg="$CPU_MS"
}

relay_run() {
	local side=$1 round=$2 conc
	server "$side" stop
	server "$side" mode relay
	server "$side" tls off
	server "$side" restart
	for conc in ${RELAY_CONCS:-10 50}; do
		relay_one "$side" "$round" "$conc"
	done
	server "$side" stop
}

sink_start
alternate relay_run
sink_stop
