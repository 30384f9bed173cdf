# lib.sh - the common library of the `make bench` sections (sourced, not
# run; see bench/README.md).  A section is one script:
#
#	. "$(dirname "$0")/lib.sh"
#	bench_init NAME "title for the summary"
#	my_run() { side=$1 round=$2; server "$side" restart; ...
#		record side=$(side_name "$side") round=$round conc=10 -- \
#		    msgs_per_s=...; server "$side" stop; }
#	alternate my_run
#
# Paths:   TOP (checkout) BENCH (bench/) BENCH_OUT (build/bench)
#          R (results: one NAME.txt per section) L (logs) BIN (tools)
#          BENCH_RUN (servers' state and queues, reachable by the users
#          nobody and postfix: build/bench/run, or a fresh /tmp dir when
#          the checkout is not, e.g. under /root; removed at the end)
# Servers: server pf|pn VERB [ARG]  the adapters (server-postfix.sh,
#          server-postern.sh): setup restart stop clean qcount pid
#          mode hold|defer|relay, tls on|off, proclimit N
#          side_name pf|pn -> postfix|postern; side_port pf|pn
# Sink:    sink_start | sink_count | sink_stop   (smtp-sink on SINK_PORT)
# Load:    loadgen pf|pn send|idle ARGS...  bench/loadgen.c against the
#          side's port, under a watchdog of --max-seconds + 30 s
#          port_is_ours pf|pn  false when another process shares the port
#          bounded SECS CMD...  any command under a watchdog (timeout(1):
#          SIGTERM after SECS, SIGKILL 10 s later; exit 124)
#          relay_once pf|pn CONC  one end-to-end relay run to the sink
#          (RELAY_COUNT, RELAY_SIZE, RELAY_MAX_SECONDS, RELAY_STALL): sets
#          WHY E2E ACCEPT CPU_MS LINE (sections relay and dkim)
# Figures: tree_cpu pf|pn -> CPU seconds of the whole server tree
#          tree_mem pf|pn -> "procs=N rss_kib=N pss_kib=N"
#          field NAME "k=v ..." -> the value of NAME
#          per_item CPU0 CPU1 N -> (CPU1 - CPU0) / N in ms
#          record K=V... -- METRIC=V...  one result line in $R/NAME.txt
#          (K=V: what identifies the run: side= round= and parameters;
#          METRIC=V: numbers; a non-number, e.g. unfinished=stalled, marks
#          a run the summary does not count)
# Rounds:  alternate FN   for round in 1..REPS: FN pf round; FN pn round
#          (A B A B: both servers see the same machine load)
#          settle         sync and pause before a measured run
# Cleanup: bench_init traps EXIT/INT/TERM: stops smtp-sink and both
#          servers and kills what bg_track registered.
# Env:     REPS (3) PF_PORT (2525) PN_PORT (2600) SINK_PORT (2526): a busy
#          port is replaced by the next free one.

BENCH=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$BENCH/.." && pwd)
BENCH_OUT=${BENCH_OUT:-$TOP/build/bench}
R=$BENCH_OUT/results
L=$BENCH_OUT/logs
BIN=$BENCH_OUT/bin
REPS=${REPS:-3}
PY=${PY:-/usr/bin/python3}
export BENCH_OUT REPS PY
mkdir -p "$R" "$L" "$BIN"
# 10,000 idle connections need as many descriptors in the client and the
# server; take what the hard limit allows
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null || true

say() { echo "$*" >&2; }

# free_port N: N, or the next port up to N+200 nobody listens on.
free_port() {
	"$PY" - "$1" <<'PY'
import socket, sys
base = int(sys.argv[1])
for p in range(base, base + 200):
    s = socket.socket()
    # as the servers bind: connections in TIME_WAIT do not make it busy
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    sys.exit(f"no free port in {base}..{base + 199}")
PY
}

# bench_run_dir: where the servers keep config, queues and logs.  Their
# unprivileged users must reach it.
bench_run_dir() {
	if [ -n "${BENCH_RUN:-}" ]; then mkdir -p "$BENCH_RUN"; return; fi
	BENCH_RUN=$BENCH_OUT/run
	mkdir -p "$BENCH_RUN"
	chmod 755 "$BENCH_RUN"
	if ! runuser -u nobody -- test -x "$BENCH_RUN" 2>/dev/null; then
		BENCH_RUN=$(mktemp -d /tmp/postern-bench.XXXXXX)
		chmod 755 "$BENCH_RUN"
		BENCH_RUN_TMP_OWNER=$$	# removed by this process at exit
		say "bench: $BENCH_OUT is not reachable by the user nobody:" \
		    "servers run in $BENCH_RUN"
	fi
}

# build_tools: bench/loadgen.c, bench/injectsink.c and bench/diskbench.c
# into $BIN (again when the source is newer).
build_tools() {
	cflags="-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wpedantic -Werror
	    -Wshadow -Wstrict-prototypes -Wno-unused-parameter"
	if [ ! -x "$BIN/loadgen" ] || [ "$BENCH/loadgen.c" -nt "$BIN/loadgen" ]; then
		# shellcheck disable=SC2046
		cc $cflags -o "$BIN/loadgen" "$BENCH/loadgen.c" \
		    $(pkg-config --cflags --libs libevent_openssl libevent_core openssl) ||
		    { say "bench: cannot build bench/loadgen.c"; exit 1; }
	fi
	if [ ! -x "$BIN/injectsink" ] || [ "$BENCH/injectsink.c" -nt "$BIN/injectsink" ]; then
		# shellcheck disable=SC2046
		cc $cflags -o "$BIN/injectsink" "$BENCH/injectsink.c" \
		    $(pkg-config --cflags --libs libevent_core openssl) ||
		    { say "bench: cannot build bench/injectsink.c"; exit 1; }
	fi
	if [ ! -x "$BIN/diskbench" ] || [ "$BENCH/diskbench.c" -nt "$BIN/diskbench" ]; then
		cc $cflags -o "$BIN/diskbench" "$BENCH/diskbench.c" ||
		    { say "bench: cannot build bench/diskbench.c"; exit 1; }
	fi
}

# bench_env: ports, run dir and tools, once per `make bench` (the driver
# exports them; a section run alone does it itself).
bench_env() {
	[ -n "${BENCH_ENV_DONE:-}" ] && return 0
	PF_PORT=$(free_port "${PF_PORT:-2525}")
	PN_PORT=$(free_port "${PN_PORT:-2600}")
	[ "$PN_PORT" = "$PF_PORT" ] && PN_PORT=$(free_port $((PF_PORT + 1)))
	SINK_PORT=$(free_port "${SINK_PORT:-2526}")
	while [ "$SINK_PORT" = "$PF_PORT" ] || [ "$SINK_PORT" = "$PN_PORT" ]; do
		SINK_PORT=$(free_port $((SINK_PORT + 1)))
	done
	bench_run_dir
	build_tools
	BENCH_ENV_DONE=1
	export PF_PORT PN_PORT SINK_PORT BENCH_RUN BENCH_ENV_DONE
}

# bench_init NAME TITLE: start section NAME (results in $R/NAME.txt).
bench_init() {
	SECTION=$1
	bench_env
	RES=$R/$SECTION.txt
	echo "# $2" > "$RES"
	BG_PIDS=
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	say "== $2"
}

bg_track() { BG_PIDS="$BG_PIDS $1"; }

bench_cleanup() {
	local p
	trap - EXIT INT TERM
	for p in $BG_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	sink_stop >/dev/null 2>&1 || true
	server pn stop >/dev/null 2>&1 || true
	server pf stop >/dev/null 2>&1 || true
	if [ "${BENCH_RUN_TMP_OWNER:-}" = "$$" ]; then rm -rf "$BENCH_RUN"; fi
}

# BENCH_BASELINE_BIN=/path/to/an/older/postern: the first side ("pf") is
# that Postern build instead of Postfix, so every section compares two
# Postern builds in one run, alternately (docs: bench/README.md).
side_name() {
	case $1 in
	pf) if [ -n "${BENCH_BASELINE_BIN:-}" ]; then echo baseline; else echo postfix; fi ;;
	pn) echo postern ;;
	*) echo "$1" ;;
	esac
}
side_port() { case $1 in pf) echo "$PF_PORT" ;; pn) echo "$PN_PORT" ;; esac; }

server() {
	local s=$1
	shift
	case $s in
	pf) if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
		PORT=$PF_PORT SINK_PORT=$SINK_PORT POSTERN_BIN=$BENCH_BASELINE_BIN \
		    POSTERN_BENCH_DIR=$BENCH_RUN/postern-baseline \
		    sh "$BENCH/server-postern.sh" "$@"
	    else
		PORT=$PF_PORT SINK_PORT=$SINK_PORT PF_DIR=$BENCH_RUN/postfix \
		    sh "$BENCH/server-postfix.sh" "$@"
	    fi ;;
	pn) PORT=$PN_PORT SINK_PORT=$SINK_PORT POSTERN_BENCH_DIR=$BENCH_RUN/postern \
	    sh "$BENCH/server-postern.sh" "$@" ;;
	*) say "server: pf or pn, not $s"; return 2 ;;
	esac
}

# smtp-sink (postfix package): discards mail, counts it (-c) on stdout.
sink_start() {
	local i
	sink_stop
	: > "$L/sink.out"
	smtp-sink -u nobody -c -m 1000 "127.0.0.1:$SINK_PORT" 1024 \
	    > "$L/sink.out" 2>&1 &
	echo $! > "$BENCH_RUN/sink.pid"
	i=0
	until "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $SINK_PORT), 1)" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -ge 50 ] || ! kill -0 "$(cat "$BENCH_RUN/sink.pid")" 2>/dev/null; then
			say "bench: smtp-sink did not start on 127.0.0.1:$SINK_PORT:"
			cat "$L/sink.out" >&2
			return 1
		fi
		sleep 0.1
	done
}

# sink_count: messages smtp-sink received so far (its last "mesg=N").
sink_count() {
	tail -c 300 "$L/sink.out" 2>/dev/null | tr '\r' '\n' |
	    sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -n 1 | grep . || echo 0
}

sink_stop() {
	local p i
	[ -f "$BENCH_RUN/sink.pid" ] || return 0
	p=$(cat "$BENCH_RUN/sink.pid")
	rm -f "$BENCH_RUN/sink.pid"
	kill -TERM "$p" 2>/dev/null || return 0
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}

# --foreground: CMD stays in our process group, so a Ctrl-C (or a SIGTERM
# to the group) reaches it at once instead of after its own bound.
bounded() {
	local secs=$1
	shift
	timeout --foreground --kill-after=10 "$secs" "$@"
}

# loadgen SIDE send|idle ARGS: the load client, bounded; its key=value
# line on stdout (and in $L/loadgen.log with stderr).
# A run whose port another process also listens on (Postfix and Postern
# both bind with SO_REUSEPORT, so a stray daemon can share the port and
# take part of the load) is reported with ok=0 error=foreign-listener.
loadgen() {
	local s=$1 mode=$2 max=300 prev= a line
	shift 2
	for a in "$@"; do [ "$prev" = --max-seconds ] && max=$a; prev=$a; done
	port_is_ours "$s" || { echo "ok=0 opened=0 error=foreign-listener"; return 1; }
	line=$(bounded $((max + 30)) "$BIN/loadgen" "$mode" --port "$(side_port "$s")" \
	    --max-seconds "$max" "$@" 2>> "$L/loadgen.log") || true
	if ! port_is_ours "$s"; then
		line=$(printf '%s error=foreign-listener\n' "$line" |
		    sed 's/ ok=[0-9]* / ok=0 /; s/ opened=[0-9]* / opened=0 /')
	fi
	printf '%s\n' "$line" | tee -a "$L/loadgen.log"
}

# port_is_ours SIDE: nothing but the side's server tree listens on its port.
port_is_ours() {
	local port tree p
	port=$(side_port "$1")
	tree=" $("$PY" "$BENCH/treestat.py" pids "$(server "$1" pid)" 2>/dev/null) "
	for p in $(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' |
	    cut -d= -f2 | sort -u); do
		case $tree in
		*" $p "*) ;;
		*) say "bench: process $p ($(cat "/proc/$p/comm" 2>/dev/null)) also" \
		    "listens on 127.0.0.1:$port: this run does not count"
		   return 1 ;;
		esac
	done
}

tree_cpu() { "$PY" "$BENCH/treestat.py" cpu "$(server "$1" pid)" | sed 's/cpu_s=//'; }
tree_mem() { "$PY" "$BENCH/treestat.py" mem "$(server "$1" pid)"; }

field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

per_item() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.3f", (n > 0 ? (b - a) / n * 1000 : 0) }'; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

record() {
	echo "section=$SECTION $*" >> "$RES"
	echo "  $*" >&2
}

settle() { sync; sleep "${SETTLE:-2}"; }

alternate() {
	local round
	for round in $(seq 1 "$REPS"); do
		"$1" pf "$round"
		"$1" pn "$round"
	done
}

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

# relay_once SIDE CONC: one end-to-end relay run (sections relay and dkim):
# RELAY_COUNT messages of RELAY_SIZE bytes over CONC sessions, timed from
# the first connection until the sink has every acknowledged message and
# the server's queue is empty; given up after RELAY_MAX_SECONDS, or after
# RELAY_STALL seconds without a delivery while messages are missing.
# Sets WHY (empty when drained, else timeout|stalled|failed|
# foreign-listener), E2E (msg/s end to end), ACCEPT (the load's own
# msg/s), CPU_MS (CPU of the whole server tree per message: accept +
# queue + delivery) and LINE (the load's line).  The sink must run.
relay_once() {
	local side=$1 conc=$2 base cpu0 cpu1 t0 lpid ok
	server "$side" clean
	settle
	base=$(sink_count)
	cpu0=$(tree_cpu "$side")
	t0=$(now)
	WHY= E2E= ACCEPT= CPU_MS= LINE=
	: > "$L/relay.line"
	if ! port_is_ours "$side"; then
		WHY=foreign-listener
		return
	fi
	# in the background under its own watchdog; $! is timeout(1), which
	# passes a SIGTERM on to the load client
	bounded $((RELAY_MAX_SECONDS + 30)) "$BIN/loadgen" send \
	    --port "$(side_port "$side")" --sessions "$conc" \
	    --count "$RELAY_COUNT" --size "$RELAY_SIZE" \
	    --max-seconds "$RELAY_MAX_SECONDS" --label "relay-$side" \
	    > "$L/relay.line" 2>> "$L/loadgen.log" &
	lpid=$!
	bg_track "$lpid"
	relay_wait "$side" "$base" "$t0" "$lpid"
	cpu1=$(tree_cpu "$side")
	kill -TERM "$lpid" 2>/dev/null || true
	wait "$lpid" 2>/dev/null || true
	LINE=$(cat "$L/relay.line")
	echo "$LINE" >> "$L/loadgen.log"
	ok=$(field ok "$LINE")
	[ -z "$WHY" ] && [ "${ok:-0}" != "$RELAY_COUNT" ] && WHY=failed
	port_is_ours "$side" || WHY=foreign-listener
	if [ -n "$WHY" ]; then
		say "  $(side_name "$side") sessions=$conc: $WHY after" \
		    "$(elapsed "$t0" "$(now)") s: sink got" \
		    "$(($(sink_count) - base)) of $RELAY_COUNT," \
		    "$(server "$side" qcount) queued; load: $LINE"
		server "$side" clean
		return
	fi
	E2E=$(awk -v n="$RELAY_COUNT" -v s="$(elapsed "$t0" "$T1")" \
	    'BEGIN { printf "%.1f", n / s }')
	ACCEPT=$(field msgs_per_s "$LINE")
	CPU_MS=$(per_item "$cpu0" "$cpu1" "$RELAY_COUNT")
}
