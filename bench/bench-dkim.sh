#!/bin/sh
# `make bench`, DKIM section (bench/run-bench.sh runs it; it also runs on
# its own): relay end to end, smtp-source -> server -> smtp-sink, 4 KiB
# messages from bench@example.org, with Postern
#   pn-plain  not signing (no dkim entry)
#   pn-rsa    signing every message with DKIM RSA-2048
#   pn-ed     signing every message with DKIM Ed25519
# side by side with Postfix relaying the same load WITHOUT a milter
# (Postfix has no DKIM of its own; with OpenDKIM as a milter it would do
# more work than shown).  Runs alternate (pf, pn-plain, pn-rsa, pn-ed) for
# DKIM_REPS rounds; each run is timed from the first message sent until
# the sink has them all and the queue is empty (bounded by
# DKIM_MAX_SECONDS).  Reported: medians of msg/s, the ratios of pn-rsa and
# pn-ed to pn-plain (targets: >= 0.8 and >= 0.9), and CPU milliseconds
# per message of the whole server and of Postern's queue manager (the
# one process that signs; the difference to pn-plain is the signing).
#
# env: DKIM_REPS (3) DKIM_COUNT (5000) DKIM_CONC (10) DKIM_SIZE (4096)
#      DKIM_PORT (2610) DKIM_SINK_PORT (2527) DKIM_PF_PORT (2525)
#      DKIM_MAX_SECONDS (300) SKIP_POSTFIX (any value: no Postfix runs)
#      POSTERN_BIN (build/postern of this checkout)
# Postfix is driven by ../shared/bench/server-postfix.sh (as in
# run-bench.sh); without it, or without root, the Postfix runs are left
# out and said so.  Results: build/bench/results/dkim-*.txt.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
SB=${SB:-$TOP/../shared/bench}
BIN=${POSTERN_BIN:-$TOP/build/postern}
REPS=${DKIM_REPS:-3}
COUNT=${DKIM_COUNT:-5000}
CONC=${DKIM_CONC:-10}
SIZE=${DKIM_SIZE:-4096}
PORT=${DKIM_PORT:-2610}
SINK_PORT=${DKIM_SINK_PORT:-2527}
PF_PORT=${DKIM_PF_PORT:-2525}
MAXS=${DKIM_MAX_SECONDS:-300}
OUT=$TOP/build/bench
R=$OUT/results
B=$OUT/dkim
D=${DKIM_DIR:-/tmp/postern-bench-dkim}
mkdir -p "$R" "$B" "$D"
chmod 755 "$D"
rm -f "$R"/dkim-*.txt
USER_NAME=nobody
[ "$(id -u)" -eq 0 ] || USER_NAME=$(id -un)

PF=
if [ -z "${SKIP_POSTFIX:-}" ] && [ "$(id -u)" -eq 0 ] && [ -f "$SB/server-postfix.sh" ]; then
	PF=$SB/server-postfix.sh
else
	echo "note: no Postfix runs (SKIP_POSTFIX set, not root, or $SB/server-postfix.sh missing)"
fi
pf() { PORT=$PF_PORT SINK_PORT=$SINK_PORT sh "$PF" "$@"; }

# ---- the measuring helper: one run, one line ------------------------------
cat > "$B/measure.py" <<'EOF'
"""One relay run: smtp-source COUNT messages over CONC sessions to PORT,
wait (bounded) until the sink counted them all and the server's queue is
empty; print rate and CPU per message of the server tree and, for Postern,
of its queue manager (serve's first child: the lowest child PID)."""
import os, subprocess, sys, time

TCK = os.sysconf("SC_CLK_TCK")
label, port, count, conc, size, sink_out, qcmd, root, maxs, pn = sys.argv[1:11]
port, count, conc, size, root = int(port), int(count), int(conc), int(size), int(root)
maxs = float(maxs)

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rfind(")") + 2:].split()

def procs():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = stat(d)
            except OSError:
                continue
            out[int(d)] = (int(f[1]), sum(int(x) for x in f[11:15]))
    return out

def tree_cpu(root):
    p = procs()
    tot, todo = 0, [root]
    while todo:
        x = todo.pop()
        tot += p.get(x, (0, 0))[1]
        todo += [c for c, (pp, _) in p.items() if pp == x]
    return tot / TCK

def qmgr(root):
    # serve forks the queue manager first: the lowest PID of its children
    kids = sorted(c for c, (pp, _) in procs().items() if pp == root)
    return kids[0] if kids else None

def sink_count():
    try:
        with open(sink_out, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 200))
            tail = f.read().decode("ascii", "replace")
    except OSError:
        return 0
    i = tail.rfind("mesg=")
    d = ""
    for ch in tail[i + 5:] if i >= 0 else "":
        if not ch.isdigit():
            break
        d += ch
    return int(d or 0)

q = qmgr(root) if pn == "1" else None
qcpu = lambda: sum(int(x) for x in stat(q)[11:13]) / TCK if q else 0.0
base, t0c, q0 = sink_count(), tree_cpu(root), qcpu()
t0 = time.perf_counter()
src = subprocess.run(["smtp-source", "-s", str(conc), "-m", str(count), "-l",
                      str(size), "-f", "bench@example.org", "-t",
                      "sink@example.com", "-M", "bench.example.org",
                      f"127.0.0.1:{port}"], capture_output=True, text=True,
                     timeout=maxs)
t_acc = time.perf_counter() - t0
got, left = 0, -1
while time.perf_counter() - t0 < maxs:
    got = sink_count() - base
    if got >= count:
        left = int(subprocess.run(qcmd, shell=True, capture_output=True,
                                  text=True).stdout.strip() or -1)
        if left == 0:
            break
    time.sleep(0.05)
secs = time.perf_counter() - t0
cpu, qc = tree_cpu(root) - t0c, qcpu() - q0
done = got >= count and left == 0 and src.returncode == 0
print(f"label={label} count={count} conc={conc} size={size} "
      f"rc={src.returncode} sink_count={got} queue_left={left} "
      f"secs={secs:.2f} accept_secs={t_acc:.2f} "
      + (f"msgs_per_s={count / secs:.1f} " if done else "unfinished=1 ")
      + f"server_cpu_ms_per_msg={cpu / count * 1e3:.3f} "
      + (f"qmgr_cpu_ms_per_msg={qc / count * 1e3:.3f}" if q else ""),
      flush=True)
EOF

# ---- the sink --------------------------------------------------------------
SINK_PID=
PN_UP=
cleanup() {
	trap - EXIT INT TERM
	[ -n "$PN_UP" ] && pn_stop >/dev/null 2>&1 || true
	[ -n "$PF" ] && pf stop >/dev/null 2>&1 || true
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
smtp-sink -u nobody -c -m 1000 "127.0.0.1:$SINK_PORT" 1024 > "$B/sink.out" 2>&1 &
SINK_PID=$!
sleep 0.5
kill -0 "$SINK_PID" 2>/dev/null || { cat "$B/sink.out"; echo "cannot start smtp-sink on 127.0.0.1:$SINK_PORT" >&2; exit 1; }

# ---- Postern ---------------------------------------------------------------
CONF=$D/postern.conf
write_conf() {	# $1: plain | rsa | ed
	case $1 in
	rsa) dk="dkim = ( { domain = \"example.org\"; selector = \"brsa\"; key = \"$D/data/dkim/example.org.brsa.key\"; } );" ;;
	ed) dk="dkim = ( { domain = \"example.org\"; selector = \"bed\"; key = \"$D/data/dkim/example.org.bed.key\"; } );" ;;
	*) dk="" ;;
	esac
	cat > "$CONF" <<CONF
hostname = "mta-bench.localdomain";
data_dir = "$D/data";
user = "$USER_NAME";
log = { file = "$D/postern.log"; format = "text"; };
listeners = ( { name = "bench"; address = "127.0.0.1"; port = $PORT; } );
sender_groups = ( { name = "RELAYLIST"; networks = [ "127.0.0.0/8" ]; policy = "relayed"; } );
policies = { relayed = { action = "relay"; max_message_size = 20971520; max_recipients = 100; }; };
local_domains = [ ];
limits = { max_connections = 10000; max_connections_per_client = 10000; };
routes = ( { domain = "*"; hosts = [ "[127.0.0.1]:$SINK_PORT" ]; } );
$dk
CONF
}
pn_pid() { cat "$D/data/postern.pid" 2>/dev/null || true; }
pn_start() {
	write_conf "$1"
	ulimit -n 65536 2>/dev/null || true
	"$BIN" serve -c "$CONF" >/dev/null
	PN_UP=1
	i=0
	until python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null &&
	    [ -s "$D/data/postern.pid" ]; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "postern did not start" >&2; exit 1; }
		sleep 0.1
	done
	sleep 1	# the children fork after the port listens
}
pn_stop() {
	p=$(pn_pid)
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null || true
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$p" 2>/dev/null || true
	PN_UP=
}
pn_qcount() { "$BIN" queue -c "$CONF" list --count; }

# keys: made once by `postern dkim keygen` (as the daemon's user)
rm -rf "$D/data/spool"	# nothing left over from an unfinished run
pn_start plain
pn_stop
for k in "brsa rsa2048" "bed ed25519"; do
	set -- $k
	[ -s "$D/data/dkim/example.org.$1.key" ] || "$BIN" dkim keygen -c "$CONF" \
	    --domain example.org --selector "$1" --type "$2" >/dev/null
done

run() {	# $1 label, $2 pn|pf, $3 round
	if [ "$2" = pf ]; then
		python3 "$B/measure.py" "$1" "$PF_PORT" "$COUNT" "$CONC" "$SIZE" \
		    "$B/sink.out" "PORT=$PF_PORT sh $PF qcount" "$(pf pid)" "$MAXS" 0
	else
		python3 "$B/measure.py" "$1" "$PORT" "$COUNT" "$CONC" "$SIZE" \
		    "$B/sink.out" "$BIN queue -c $CONF list --count" "$(pn_pid)" \
		    "$MAXS" 1
	fi | tee -a "$R/dkim-$1.txt"
}

echo "== DKIM signing: relay to smtp-sink ($COUNT x $SIZE octets, $CONC sessions, $REPS rounds, alternating)"
[ -n "$PF" ] && { pf setup >/dev/null; pf mode relay >/dev/null; pf stop >/dev/null; }
for r in $(seq 1 "$REPS"); do
	if [ -n "$PF" ]; then
		pf restart >/dev/null
		run pf-nomilter pf "$r"
		pf stop >/dev/null
	fi
	for m in plain rsa ed; do
		pn_start "$m"
		run "pn-$m" pn "$r"
		pn_stop
	done
done
grep -c "DKIM signed" "$D/postern.log" | sed 's/^/signature log lines: /'

# ---- summary ---------------------------------------------------------------
python3 - "$R" <<'EOF'
import re, statistics, sys, os
R = sys.argv[1]
def vals(label, key):
    try:
        text = open(os.path.join(R, f"dkim-{label}.txt")).read()
    except OSError:
        return []
    return [float(x) for x in re.findall(rf"\b{key}=([0-9.]+)", text)]
def med(label, key):
    v = vals(label, key)
    return statistics.median(v) if v else None
rate = {l: med(l, "msgs_per_s") for l in ("pf-nomilter", "pn-plain", "pn-rsa", "pn-ed")}
print("== DKIM summary (medians)")
for l, v in rate.items():
    if v is None:
        continue
    s = f"  {l:12s} {v:8.1f} msg/s   server CPU {med(l, 'server_cpu_ms_per_msg'):.3f} ms/msg"
    q = med(l, "qmgr_cpu_ms_per_msg")
    if q is not None:
        s += f"   queue manager CPU {q:.3f} ms/msg"
    print(s)
p = rate.get("pn-plain")
if p:
    for l, want in (("pn-rsa", 0.8), ("pn-ed", 0.9)):
        if rate.get(l):
            r = rate[l] / p
            print(f"  {l} / pn-plain = {r:.2f} (target >= {want}: "
                  f"{'met' if r >= want else 'NOT met'})")
    qp = med("pn-plain", "qmgr_cpu_ms_per_msg")
    for l in ("pn-rsa", "pn-ed"):
        q = med(l, "qmgr_cpu_ms_per_msg")
        if q is not None and qp is not None:
            print(f"  signing CPU per message ({l[3:]}): {q - qp:.3f} ms "
                  f"(queue manager, minus pn-plain's)")
    if rate.get("pf-nomilter"):
        print(f"  pn-plain / Postfix = {p / rate['pf-nomilter']:.2f}, "
              f"pn-rsa / Postfix = {(rate.get('pn-rsa') or 0) / rate['pf-nomilter']:.2f}"
              " (Postfix without a milter signs nothing)")
EOF
