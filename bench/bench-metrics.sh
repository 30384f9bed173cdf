#!/bin/sh
# bench/bench-metrics.sh - what the Prometheus metrics cost on the accept
# path (`make bench` runs it from run-bench.sh; it also runs alone).
#
# One postern on 127.0.0.1:$PORT, delivery paused (accept and queue
# durably, deliver nothing), started alternately without and with a
# `metrics` block (ON, OFF, ON, OFF ... so that drift hits both alike);
# each run sends COUNT messages of SIZE octets from CONC parallel
# smtp-source sessions, one connection per message (connection, session,
# message, durable commit: everything the counters touch).  During the
# runs with metrics, the endpoint is scraped every SCRAPE seconds (the
# scrape lists the growing spool), so its cost is in the figure too.
# Result, per run and as medians with on/off: messages per second (wall
# clock), and the daemon's CPU time per message (user + system of the
# master and every child, read from /proc before the stop), which a busy
# shared machine disturbs less than the wall clock; and the ratio of each
# round's on and off runs (adjacent runs: drift cancels), median of those.
# Then build/metrics_hotpath times the metrics calls of one message
# alone (two processes at once, counting off and on), which a busy
# machine cannot hide: nanoseconds per message, also as a share of the
# daemon's CPU per message measured above.
#
# env: METRICS_REPS (REPS, else 5 pairs) METRICS_COUNT (5000)
#      METRICS_CONC (10) METRICS_SIZE (4096) METRICS_SCRAPE (5 s)
#      POSTERN_BIN (build/postern of this tree) BENCH_METRICS_DIR
#      (/tmp/postern-bench-metrics)
# Needs smtp-source (Debian postfix) and curl.  Results, in the format of
# the other sections (bench/README.md; report.py: side off vs on):
# build/bench/results/metrics.txt.  Stand-alone: it sources nothing.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${POSTERN_BIN:-$TOP/build/postern}
D=${BENCH_METRICS_DIR:-/tmp/postern-bench-metrics}
ROUNDS=${METRICS_REPS:-${REPS:-5}}
COUNT=${METRICS_COUNT:-5000}
CONC=${METRICS_CONC:-10}
SIZE=${METRICS_SIZE:-4096}
SCRAPE=${METRICS_SCRAPE:-5}
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
MPORT=$(free_port)
R=${BENCH_OUT:-$TOP/build/bench}/results
OUT=$R/metrics.txt
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
mkdir -p "$D" "$R"
chmod 755 "$D"
echo "# metrics: Postern alone, accept with the metrics endpoint off and on ($COUNT x $SIZE octets, $CONC sessions, a connection per message), and the metrics calls of one message alone (kind=hotpath)" > "$OUT"
ulimit -n 65536 2>/dev/null || true
USER_LINE='user = "nobody";'	# as root: drop to nobody, as the bench adapter
SCRAPER=

write_conf() {	# on|off
	metrics=""
	[ "$1" = on ] && metrics="metrics = { address = \"127.0.0.1\"; port = $MPORT; };"
	cat > "$D/postern.conf" <<CONF
hostname = "mta-bench.localdomain";
data_dir = "$D/data";
$USER_LINE
log = { file = "$D/postern.log"; format = "text"; };
listeners = ( { name = "bench"; address = "127.0.0.1"; port = $PORT; } );
sender_groups = ( { name = "LOCAL"; networks = [ "127.0.0.0/8" ]; policy = "relayed"; } );
policies = { relayed = { action = "relay"; max_message_size = 20971520; max_recipients = 100; }; };
local_domains = [ ];
limits = { max_connections = 10000; max_connections_per_client = 10000; };
delivery = { paused = true; };
$metrics
CONF
}

master_pid() { cat "$D/data/postern.pid" 2>/dev/null || true; }

# CPU seconds (user + system) of the master and its children so far.
cpu_secs() {
	m=$(master_pid)
	for p in $m $(ps -o pid= --ppid "$m" 2>/dev/null); do
		cat "/proc/$p/stat" 2>/dev/null || true
	done | awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.2f", t / hz }'
}

stop() {
	[ -z "$SCRAPER" ] || { kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=; }
	pid=$(master_pid)
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$D/data/postern.pid"
}
trap 'stop' EXIT
trap 'exit 130' INT TERM

# A fresh spool each run (the certificate store stays), then serve.
start() {	# on|off
	write_conf "$1"
	rm -rf "$D/data/spool"
	"$BIN" serve -c "$D/postern.conf" >/dev/null
	i=0
	until [ -s "$D/data/postern.pid" ] && "$BIN" status -c "$D/postern.conf" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "postern did not start" >&2; tail -n 5 "$D/postern.log" >&2; exit 1; }
		sleep 0.1
	done
	if [ "$1" = on ]; then
		( while :; do curl -s -o /dev/null "http://127.0.0.1:$MPORT/metrics" || true; sleep "$SCRAPE"; done ) &
		SCRAPER=$!
	fi
}

# One run: COUNT messages, one connection each; its result line (the
# format of bench/lib.sh `record`) on stdout.
run() {	# on|off round
	start "$1"
	sync; sleep 1
	c0=$(cpu_secs)
	t0=$(date +%s.%N)
	"$SOURCE" -s "$CONC" -m "$COUNT" -l "$SIZE" -f a@bench.example -t b@bench.example "127.0.0.1:$PORT"
	t1=$(date +%s.%N)
	c1=$(cpu_secs)
	n=$("$BIN" queue -c "$D/postern.conf" list --count)
	stop
	rate=$(echo "$COUNT $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }')
	cpu=$(echo "$COUNT $c0 $c1" | awk '{ printf "%.1f", ($3 - $2) * 1e6 / $1 }')
	lost=""
	[ "$n" -eq "$COUNT" ] || lost=" unfinished=lost-$((COUNT - n))"
	echo "section=metrics side=$1 round=$2 size=$SIZE sessions=$CONC -- msgs_per_s=$rate cpu_us_per_msg=$cpu$lost"
}

[ "$(id -u)" -eq 0 ] || USER_LINE=''
[ -x "$SOURCE" ] || { echo "bench-metrics: smtp-source missing (apt-get install postfix)" >&2; exit 1; }
echo "== metrics cost on the accept path (off/on alternately, $ROUNDS rounds, $COUNT x $SIZE octets, $CONC sessions, a connection per message, scrape every $SCRAPE s while on)" >&2
stop
for r in $(seq 1 "$ROUNDS"); do
	# the order alternates; the off line is written first (report.py:
	# the first side is the reference)
	if [ $((r % 2)) -eq 1 ]; then on=$(run on "$r"); off=$(run off "$r")
	else off=$(run off "$r"); on=$(run on "$r"); fi
	printf '%s\n%s\n' "$off" "$on" | tee -a "$OUT" >&2
done
# medians, the median of each round's on/off, CPU per message
awk '
	/^section=metrics side=/ { split($2, sd, "="); split($3, rd, "=")
		split($(NF - 1), v, "="); split($NF, c, "=")
		x[sd[2]] = x[sd[2]] " " v[2]; y[sd[2]] = y[sd[2]] " " c[2]
		rate[sd[2], rd[2]] = v[2]; rounds[rd[2]] = 1 }
	function median(s,   a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END {
		on = median(x["on"]); off = median(x["off"])
		con = median(y["on"]); coff = median(y["off"])
		for (k in rounds) pr = pr " " rate["on", k] / rate["off", k]
		p = median(pr)
		printf "metrics summary: median msg/s on %.1f, off %.1f: on/off %.3f (%+.1f%%); median of the rounds on/off %.3f (%+.1f%%); median CPU us/msg on %.1f, off %.1f: %+.1f%%\n", on, off, on / off, (on / off - 1) * 100, p, (p - 1) * 100, con, coff, (con / coff - 1) * 100
		print coff > "/dev/stderr"
	}' "$OUT" 2> "$D/cpu_off"
hot=$("$TOP/build/metrics_hotpath") || { echo "bench-metrics: build/metrics_hotpath failed" >&2; exit 1; }
echo "$hot"
echo "$hot" | awk '{ for (i = 1; i <= NF; i++) if ($(i + 1) == "ns") n[++k] = $i
	printf "section=metrics side=off kind=hotpath -- ns_per_msg=%s\nsection=metrics side=on kind=hotpath -- ns_per_msg=%s\n", n[1], n[2] }' >> "$OUT"
echo "$hot $(cat "$D/cpu_off")" | awk '{ ns = $(NF - 2) + 0; printf "metrics hot path: +%.1f ns per message = %.4f%% of the daemon'"'"'s %s us of CPU per message (median, off)\n", ns, ns / ($NF * 10), $NF }'
