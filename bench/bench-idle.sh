#!/bin/sh
# Section "idle" of `make bench` (bench/README.md): memory per idle
# connection.  IDLE_CONNS connections, each after its EHLO, held open
# while the memory of the whole server tree (the adapter's pid and every
# descendant) is read; Postfix (a process per connection) and Postern
# alternately.  Then Postern alone with IDLE_BIG_CONNS connections at once.
# Figures per run: pss_kib_per_conn and rss_kib_per_conn (growth of the
# tree's PSS / RSS over the connections; PSS splits shared pages among the
# processes, so it is the real cost), tree_pss_mib (the whole tree while
# the connections are open), memavail_kib_per_conn (drop of the machine's
# MemAvailable, which includes kernel socket buffers; noisy on a shared
# machine).
# env: IDLE_CONNS (500) IDLE_HOLD (HOLD or 15 s) IDLE_BIG_CONNS (10000; 0 skips;
#      2 x CONNS_EACH if that is set)
set -eu
. "$(dirname "$0")/lib.sh"
IDLE_CONNS=${IDLE_CONNS:-500}
IDLE_HOLD=${IDLE_HOLD:-${HOLD:-15}}
if [ -n "${CONNS_EACH:-}" ]; then IDLE_BIG_CONNS=${IDLE_BIG_CONNS:-$((2 * CONNS_EACH))}; fi
IDLE_BIG_CONNS=${IDLE_BIG_CONNS:-10000}
bench_init idle "memory per idle connection (connections held after EHLO)"

memavail() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }

# idle_measure SIDE ROUND CONNS: one measurement, recorded.
idle_measure() {
	local side=$1 round=$2 n=$3 before after a0 a1 lpid i line id
	sleep 2
	before=$(tree_mem "$side")
	a0=$(memavail)
	rm -f "$L/idle.ready"
	id="side=$(side_name "$side") round=$round conns=$n"
	if ! port_is_ours "$side"; then
		record $id -- unfinished=foreign-listener
		return
	fi
	bounded $((IDLE_HOLD + 330)) "$BIN/loadgen" idle --port "$(side_port "$side")" \
	    --conns "$n" --hold "$IDLE_HOLD" --ready-file "$L/idle.ready" \
	    --max-seconds $((IDLE_HOLD + 300)) --label "idle-$side-$round" \
	    > "$L/idle.line" 2>> "$L/loadgen.log" &
	lpid=$!
	bg_track "$lpid"
	i=0
	while [ ! -s "$L/idle.ready" ] && kill -0 "$lpid" 2>/dev/null && [ $i -lt 3000 ]; do
		sleep 0.1; i=$((i + 1))
	done
	sleep 3
	after=$(tree_mem "$side")
	a1=$(memavail)
	wait "$lpid" || true
	line=$(cat "$L/idle.line")
	echo "$line" >> "$L/loadgen.log"
	port_is_ours "$side" ||
	    line=$(printf '%s\n' "$line" | sed 's/ opened=[0-9]* / opened=0 /')
	if [ "$(field opened "$line")" != "$n" ]; then
		say "  $id: not every connection was held: $line"
		record $id -- unfinished=failed
		return
	fi
	record $id -- $("$PY" - "$n" "$before" "$after" "$a0" "$a1" <<'PY'
import sys
n = int(sys.argv[1])
b, a = (dict(t.split("=", 1) for t in x.split()) for x in sys.argv[2:4])
d = lambda k: (int(a[k]) - int(b[k])) / n
print(f"pss_kib_per_conn={d('pss_kib'):.1f} rss_kib_per_conn={d('rss_kib'):.1f} "
      f"tree_pss_mib={int(a['pss_kib']) / 1024:.1f} "
      f"memavail_kib_per_conn={(int(sys.argv[4]) - int(sys.argv[5])) / n:.1f}")
PY
)
}

idle_run() {
	local side=$1 round=$2
	server "$side" stop
	server "$side" mode hold
	server "$side" tls off
	server "$side" proclimit $((IDLE_CONNS + 100))
	server "$side" restart
	idle_measure "$side" "$round" "$IDLE_CONNS"
	server "$side" stop
	server "$side" proclimit 100
}

alternate idle_run
if [ "$IDLE_BIG_CONNS" -gt 0 ]; then
	server pn mode hold
	server pn proclimit $((IDLE_BIG_CONNS + 100))
	server pn restart
	idle_measure pn 1 "$IDLE_BIG_CONNS"
	server pn stop
	server pn proclimit 100
fi
