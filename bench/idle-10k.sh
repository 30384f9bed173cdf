#!/bin/sh
# 10,000 idle connections (after EHLO) held at once against Postern, from
# two clients of 5,000 each (../shared/bench/smtpload.py caps one client at
# 5,000); prints the memory of the whole server process tree (procmem.py).
# env: PORT (2600) CONNS_EACH (5000) HOLD (20)
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
SB=$(cd "$TOP/../shared/bench" && pwd)
PORT=${PORT:-2600}; EACH=${CONNS_EACH:-5000}; HOLD=${HOLD:-20}
B=${BENCH_OUT:-$TOP/build/bench}/build
mkdir -p "$B"
ulimit -n 65536 2>/dev/null || true
pn() { PORT=$PORT sh "$TOP/bench/server-postern.sh" "$@"; }
pn proclimit $((2 * EACH + 100)) >/dev/null
pid=$(pn pid)
before=$(python3 "$SB/procmem.py" "$pid" before)
rm -f "$B/idle1.ready" "$B/idle2.ready"
for i in 1 2; do
	python3 "$SB/smtpload.py" --port "$PORT" --max-seconds 120 --label idle$i \
	    idle --conns "$EACH" --hold "$HOLD" --ready-file "$B/idle$i.ready" \
	    > "$B/idle$i.out" 2>&1 &
done
i=0
while { [ ! -f "$B/idle1.ready" ] || [ ! -f "$B/idle2.ready" ]; } && [ $i -lt 1200 ]; do
	sleep 0.1; i=$((i + 1))
done
sleep 3
after=$(python3 "$SB/procmem.py" "$pid" after)
wait
cat "$B/idle1.out" "$B/idle2.out" | grep label= || true
python3 - "$((2 * EACH))" "$before" "$after" <<'PY'
import sys
n = int(sys.argv[1])
b = dict(t.split("=", 1) for t in sys.argv[2].split())
a = dict(t.split("=", 1) for t in sys.argv[3].split())
print(f"label=idle-10k conns={n} procs={a['procs']} "
      f"rss_after_mib={int(a['rss_kib']) / 1024:.1f} pss_after_mib={int(a['pss_kib']) / 1024:.1f} "
      f"pss_kib_per_conn={(int(a['pss_kib']) - int(b['pss_kib'])) / n:.2f} "
      f"rss_kib_per_conn={(int(a['rss_kib']) - int(b['rss_kib'])) / n:.2f}")
PY
