#!/bin/sh
# `make bench`: Postern and Postfix 3.7 side by side on loopback, with the
# project's own load client (bench/loadgen.c), each figure measured on both
# servers alternately (A B A B) and given as a ratio of medians.  Sections
# and knobs: bench/README.md.  One section is one script; a new one is one
# line below (it sources bench/lib.sh).
#   disk    durable 4 KiB writes/s: the physical limit
#   accept  durable accept throughput, delivery held, 4/19 KiB, 1/10/50
#           sessions; CPU per message
#   relay   end to end to smtp-sink until the queue is empty, 4 KiB, 10
#           and 50 sessions; CPU per message
#   tls     full sessions/s with and without STARTTLS, 10 and 40 clients
#   idle    memory per idle connection (500 each; Postern also 10,000)
#   inject  `postern send` (bulk) vs smtp-source into smtp-sink; STARTTLS
#           vs plaintext
#   http    4 KiB messages by the HTTPS API vs SMTP+STARTTLS into Postern
#   metrics Postern alone: accept with the metrics endpoint off and on,
#           and the metrics calls of one message timed alone
#   dkim    relay with DKIM RSA-2048 / Ed25519 signing vs unsigned, and
#           Postfix without a milter beside them
# env: REPS (3 rounds) SKIP_DISK SKIP_ACCEPT SKIP_RELAY SKIP_TLS SKIP_IDLE SKIP_INJECT SKIP_HTTP SKIP_METRICS SKIP_DKIM
#      (non-empty: skip) and each section's own knobs.
# Results: build/bench/results/NAME.txt (one line per run), logs in
# build/bench/logs/, the summary at the end (bench/report.py).
set -eu
. "$(dirname "$0")/lib.sh"
bench_env
rm -f "$R"/*.txt "$R/order" "$L"/*
BG_PIDS=
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
say "bench: postfix on 127.0.0.1:$PF_PORT, postern on 127.0.0.1:$PN_PORT," \
    "smtp-sink on 127.0.0.1:$SINK_PORT; state in $BENCH_RUN; $REPS rounds;" \
    "load: $(cut -d' ' -f1-3 /proc/loadavg)"

# section SKIPVAR NAME: run bench/bench-NAME.sh unless $SKIPVAR is set; a
# failing section is reported and the others still run.
section() {
	eval "skip=\${$1:-}"
	[ -n "$skip" ] && return 0
	echo "$2" >> "$R/order"
	sh "$BENCH/bench-$2.sh" || say "bench: section $2 failed (exit $?)"
}

section SKIP_DISK disk
section SKIP_ACCEPT accept
section SKIP_RELAY relay
section SKIP_TLS tls
section SKIP_IDLE idle
section SKIP_INJECT inject
section SKIP_HTTP http
section SKIP_METRICS metrics
section SKIP_DKIM dkim

echo
echo "== summary (median [min-max] n=runs; load now: $(cut -d' ' -f1-3 /proc/loadavg))"
"$PY" "$BENCH/report.py" "$R"
