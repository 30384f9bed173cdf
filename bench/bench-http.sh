#!/bin/sh
# bench-http.sh - 4 KiB messages into Postern by the HTTPS API and by SMTP
# with STARTTLS, side by side (docs/http-api.md "Benchmark"): the same
# count and concurrency, the same credential (HTTP Basic / AUTH PLAIN
# after STARTTLS), both durable (201 / 250 only after the group commit),
# delivery paused so only acceptance is measured.  Runs alternate
# (API SMTP API SMTP ...); medians at the end.  Self-contained: its own
# daemon on free loopback ports in a temporary directory.
# env: POSTERN (binary, default build/postern) REPS (3) COUNT (5000)
#      CONC (10) KEEP (keep the temporary directory)
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${POSTERN:-$TOP/build/postern}
REPS=${REPS:-3}
COUNT=${COUNT:-5000}
CONC=${CONC:-10}
D=$(mktemp -d /tmp/postern-bench-http.XXXXXX)
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SP=$(port); HP=$(port)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$D"
}
trap cleanup EXIT INT TERM
cat > "$D/postern.conf" <<CONF
hostname = "bench.test"; data_dir = "data"; user = "root";
log = { file = "postern.log"; format = "text"; };
listeners = ( { name = "submission"; address = "127.0.0.1"; port = $SP;
  tls = "required"; auth = "required"; } );
http = { address = "127.0.0.1"; port = $HP; };
sender_groups = ( { name = "ALL"; networks = [ "0.0.0.0/0" ]; policy = "p"; } );
policies = { p = { action = "accept"; max_recipients = 100; }; };
local_domains = [ "example.com" ];
routes = ( { domain = "*"; hosts = [ "[127.0.0.1]:9" ]; } );
delivery = { paused = true; };
limits = { max_connections_per_client = 1000; };
CONF
cd "$D"
"$BIN" serve -c postern.conf --foreground >serve.out 2>&1 &
PID=$!
i=0
until grep -q "starting" postern.log 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 200 ] || { echo "bench-http: postern did not start" >&2; cat serve.out >&2; exit 1; }
	sleep 0.05
done
PW=$("$BIN" user add bench --identity example.org -c postern.conf | sed -n 's/^password: //p')
head -c 4096 /dev/zero | tr '\0' 'x' | fold -w 76 > body.txt
export SMTP_USER=bench SMTP_PASSWORD="$PW"
common="-c postern.conf --insecure --from bench@example.org --to rcpt@remote.example --subject bench --body-file body.txt --count $COUNT --concurrency $CONC"
rate() { sed -n 's/.*: \([0-9.]*\) messages\/second$/\1/p'; }
api=""; smtp=""
echo "== HTTPS API vs SMTP+STARTTLS: $COUNT messages of 4 KiB, $CONC connections, durable"
r=0
while [ $r -lt "$REPS" ]; do
	r=$((r + 1))
	a=$("$BIN" send $common --http "https://127.0.0.1:$HP" 2>&1 | rate || true)
	s=$("$BIN" send $common --host 127.0.0.1 --port "$SP" --starttls 2>&1 | rate || true)
	echo "run $r: api ${a:-failed} msg/s, smtp+starttls ${s:-failed} msg/s"
	api="$api ${a:-0}"; smtp="$smtp ${s:-0}"
done
/usr/bin/python3 - "$api" "$smtp" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
s = [float(x) for x in sys.argv[2].split()]
ma, ms = statistics.median(a), statistics.median(s)
print(f"median: api {ma:.1f} msg/s, smtp+starttls {ms:.1f} msg/s, "
      f"ratio api/smtp {ma / ms if ms else 0:.2f} "
      f"({'target met' if ma >= ms else 'below target'})")
PY
