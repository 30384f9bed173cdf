#!/bin/sh
# Server adapter for Postern in `make bench` (bench/README.md), with the
# same verbs as bench/server-postfix.sh:
#   setup            write the bench configuration and (re)start postern
#   mode hold|defer|relay
#                    hold/defer: delivery.paused = true (accept and queue
#                    durably, deliver nothing); relay: a "*" route to
#                    [127.0.0.1]:$SINK_PORT
#   tls on|off       offer STARTTLS (RSA-2048 self-signed, like Postfix's)
#   proclimit N      raise the connection limits so N connections fit
#   dkim none|rsa2048|ed25519
#                    sign the mail from example.org (the load's From:)
#                    with a DKIM key of that type (made once with
#                    `postern dkim keygen`, selector b<type>), or not
#   restart | clean | qcount | pid | stop
#                    qcount: messages still in the queue or held (`postern
#                    queue list --count`; reads the spool, daemon running
#                    or not); stop: SIGTERM, SIGKILL after 15 s
# mode, tls, proclimit and dkim restart postern if it runs.
# env: PORT (2600) SINK_PORT (2526) POSTERN_BIN (build/postern of this
#      checkout) POSTERN_BENCH_DIR (build/bench/run/postern; the user
#      nobody must reach it)
# Same durability as Postfix: postern fsyncs (syncfs) message, envelope and
# directory entry before its 250.  Runs as user nobody after binding.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PORT:-2600}
SINK_PORT=${SINK_PORT:-2526}
BIN=${POSTERN_BIN:-$HERE/../build/postern}
D=${POSTERN_BENCH_DIR:-$HERE/../build/bench/run/postern}
mkdir -p "$D"
D=$(cd "$D" && pwd)
CONF=$D/postern.conf
chmod 755 "$D"
[ -f "$D/mode" ] || echo hold > "$D/mode"
[ -f "$D/limit" ] || echo 100 > "$D/limit"
[ -f "$D/tls" ] || echo off > "$D/tls"
[ -f "$D/dkim" ] || echo none > "$D/dkim"

write_conf() {
    mode=$(cat "$D/mode"); limit=$(cat "$D/limit")
    paused=false; route=""
    case $mode in
    hold|defer) paused=true ;;
    relay) route="{ domain = \"*\"; hosts = [ \"[127.0.0.1]:$SINK_PORT\" ]; }" ;;
    esac
    tls=""
    if [ "$(cat "$D/tls")" = on ]; then
        # RSA-2048 self-signed, as server-postfix.sh makes Postfix's; the
        # key is read after the privilege drop, so it belongs to nobody.
        if [ ! -s "$D/bench.key" ]; then
            openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
                -subj "/CN=mta-bench.localdomain" -keyout "$D/bench.key" \
                -out "$D/bench.pem" 2>/dev/null
            chmod 600 "$D/bench.key"
            chown nobody "$D/bench.key" 2>/dev/null || true
        fi
        tls="tls = \"preferred\"; certificate = { cert = \"$D/bench.pem\"; key = \"$D/bench.key\"; };"
    fi
    conns=$((limit + 200))
    [ $conns -lt 10000 ] && conns=10000
    cat > "$CONF" <<CONF
hostname = "mta-bench.localdomain";
data_dir = "$D/data";
user = "nobody";
log = { file = "$D/postern.log"; format = "text"; };
listeners = ( { name = "bench"; address = "127.0.0.1"; port = $PORT; $tls } );
sender_groups = ( { name = "RELAYLIST"; networks = [ "127.0.0.0/8" ]; policy = "relayed"; } );
policies = { relayed = { action = "relay"; max_message_size = 20971520; max_recipients = 100; }; };
local_domains = [ ];
limits = { max_connections = $conns; max_connections_per_client = $conns; };
routes = ( $route );
delivery = { paused = $paused; };
CONF
    add_dkim
}

# The dkim entry of the chosen key type, the key made first if missing
# (as nobody, into data_dir/dkim: data_dir must exist and be nobody's).
add_dkim() {
    kt=$(cat "$D/dkim")
    [ "$kt" = none ] && return 0
    key=$D/data/dkim/example.org.b$kt.key
    if [ ! -s "$key" ]; then
        mkdir -p "$D/data"
        chown nobody "$D/data" 2>/dev/null || true
        "$BIN" dkim keygen -c "$CONF" --domain example.org \
            --selector "b$kt" --type "$kt" >/dev/null
    fi
    echo "dkim = ( { domain = \"example.org\"; selector = \"b$kt\"; key = \"$key\"; } );" >> "$CONF"
}

pidof_master() { cat "$D/data/postern.pid" 2>/dev/null || true; }

start() {
    write_conf
    "$BIN" config check -c "$CONF" >/dev/null
    ulimit -n 65536 2>/dev/null || true
    "$BIN" serve -c "$CONF" >/dev/null
    # ready when the port accepts and the pid file is written
    i=0
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null &&
        [ -s "$D/data/postern.pid" ]; do
        i=$((i + 1))
        if [ $i -ge 100 ]; then echo "postern did not start" >&2; tail "$D/postern.log" >&2; exit 1; fi
        sleep 0.1
    done
}

# The master gives its children 12 s after SIGTERM (serve.c WORKER_GRACE
# + 2) before SIGKILL; wait a little longer than that, then kill what is
# left of the daemon's process group, so that a restart never runs beside
# an old daemon (the listeners are SO_REUSEPORT: both would accept).
stop() {
    pid=$(pidof_master)
    [ -n "$pid" ] || return 0
    # a pid file can outlive its daemon: signal only a `postern serve`
    if ! tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q 'postern serve'; then
        rm -f "$D/data/postern.pid"; return 0
    fi
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
    kill "$pid" 2>/dev/null || true
    i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        echo "postern (pid $pid) did not stop in 15 s: SIGKILL" >&2
        mine=$(ps -o pgid= -p $$ | tr -d ' ')
        if [ -n "$pgid" ] && [ "$pgid" -gt 1 ] && [ "$pgid" != "$mine" ]; then
            kill -KILL "-$pgid" 2>/dev/null || true
        fi
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$D/data/postern.pid"
}

running() {
    p=$(pidof_master)
    [ -n "$p" ] && tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -q 'postern serve'
}

case "${1:-}" in
setup)   stop; start ;;
mode)    case "${2:-}" in hold|defer|relay) echo "$2" > "$D/mode" ;; *) echo "mode hold|defer|relay" >&2; exit 2 ;; esac
         if running; then stop; start; fi ;;
tls)     case "${2:-}" in
         on|off) echo "$2" > "$D/tls" ;;
         *) echo "tls on|off" >&2; exit 2 ;; esac
         if running; then stop; start; fi ;;
proclimit) echo "${2:?N}" > "$D/limit"; if running; then stop; start; fi ;;
dkim)    case "${2:-}" in
         none|rsa2048|ed25519) echo "$2" > "$D/dkim" ;;
         *) echo "dkim none|rsa2048|ed25519" >&2; exit 2 ;; esac
         if running; then stop; start; fi ;;
restart) stop; start ;;
clean)   "$BIN" queue -c "$CONF" delete --all >/dev/null ;;
qcount)  "$BIN" queue -c "$CONF" list --count ;;
pid)     pidof_master ;;
stop)    stop ;;
*)       sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 2 ;;
esac
