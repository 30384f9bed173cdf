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

# relay_wait SIDE BASE T0 LOADPID: until the sink has every acknowledged
# message and the queue is empty; sets WHY (empty when drained) and T1.
relay_wait() {
	local side=$1 base=$2 t0s last tlast got target nows
	t0s=$(date +%s); last=0; tlast=$t0s; WHY=; target=$RELAY_COUNT
	while :; do
		sleep 0.1
		got=$(($(sink_count) - base))
		nows=$(date +%s)
		if [ "$got" != "$last" ]; then last=$got; tlast=$nows; fi
		if [ -n "$4" ] && ! kill -0 "$4" 2>/dev/null; then
			wait "$4" 2>/dev/null || true
			set -- "$1" "$2" "$3" ""
			target=$(field ok "$(cat "$L/relay.line" 2>/dev/null)")
			target=${target:-0}
		fi
		if [ -z "$4" ] && [ "$got" -ge "$target" ] &&
		    [ "$(server "$side" qcount)" -eq 0 ]; then
			T1=$(now)
			return
		fi
		if [ $((nows - t0s)) -ge "$RELAY_MAX_SECONDS" ]; then WHY=timeout; return; fi
		if [ "$got" -lt "$target" ] && [ $((nows - tlast)) -ge "$RELAY_STALL" ]; then
			WHY=stalled; return
		fi
	done
}

relay_one() {
	local side=$1 round=$2 conc=$3 base cpu0 cpu1 t0 lpid line ok id
	server "$side" clean
	settle
	base=$(sink_count)
	cpu0=$(tree_cpu "$side")
	t0=$(now)
	: > "$L/relay.line"
	if ! port_is_ours "$side"; then
		record side="$(side_name "$side")" round="$round" size="$RELAY_SIZE" \
		    sessions="$conc" -- unfinished=foreign-listener
		return
	fi
	# in the background under its own watchdog; $! is timeout(1), which
	# passes a SIGTERM on to the load client
	bounded $((RELAY_MAX_SECONDS + 30)) "$BIN/loadgen" send \
	    --port "$(side_port "$side")" --sessions "$conc" \
	    --count "$RELAY_COUNT" --size "$RELAY_SIZE" \
	    --max-seconds "$RELAY_MAX_SECONDS" --label "relay-$side-$round" \
	    > "$L/relay.line" 2>> "$L/loadgen.log" &
	lpid=$!
	bg_track "$lpid"
	relay_wait "$side" "$base" "$t0" "$lpid"
	cpu1=$(tree_cpu "$side")
	kill -TERM "$lpid" 2>/dev/null || true
	wait "$lpid" 2>/dev/null || true
	line=$(cat "$L/relay.line")
	echo "$line" >> "$L/loadgen.log"
	ok=$(field ok "$line")
	id="side=$(side_name "$side") round=$round size=$RELAY_SIZE sessions=$conc"
	[ -z "$WHY" ] && [ "${ok:-0}" != "$RELAY_COUNT" ] && WHY=failed
	port_is_ours "$side" || WHY=foreign-listener
	if [ -n "$WHY" ]; then
		say "  $id: $WHY after $(elapsed "$t0" "$(now)") s: sink got" \
		    "$(($(sink_count) - base)) of $RELAY_COUNT, $(server "$side" qcount) queued; load: $line"
		record $id -- unfinished="$WHY"
		server "$side" clean
		return
	fi
	record $id -- e2e_msgs_per_s="$(awk -v n="$RELAY_COUNT" -v s="$(elapsed "$t0" "$T1")" \
	    'BEGIN { printf "%.1f", n / s }')" \
	    accept_msgs_per_s="$(field msgs_per_s "$line")" \
	    cpu_ms_per_msg="$(per_item "$cpu0" "$cpu1" "$RELAY_COUNT")"
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
