#!/bin/sh
# Section "tls" of `make bench` (bench/README.md): full sessions per second
# with and without STARTTLS - connect, EHLO, [STARTTLS, EHLO,] MAIL, RCPT,
# DATA 4 KiB, QUIT - with TLS_CLIENTS sessions at once, delivery held.
# Both servers offer STARTTLS with an RSA-2048 self-signed certificate;
# the client makes a full handshake every session (no resumption, no
# tickets), TLS 1.2 or newer (1.3 in practice).  Postfix and Postern
# alternately.
# Figures per run: sessions_per_s, cpu_ms_per_session (CPU of the whole
# server tree / sessions), sess_p50_ms and sess_p99_ms (connect to the
# reply to QUIT).  After each run the queue must hold every session's
# message, or the run is marked unfinished.
# env: TLS_COUNT (3000 sessions per run) TLS_CLIENTS ("10 40")
#      TLS_MAX_SECONDS (300 per run)
set -eu
. "$(dirname "$0")/lib.sh"
TLS_COUNT=${TLS_COUNT:-3000}
TLS_MAX_SECONDS=${TLS_MAX_SECONDS:-300}
bench_init tls "sessions/s with and without STARTTLS ($TLS_COUNT sessions per run, 4 KiB, delivery held)"

tls_run() {
	local side=$1 round=$2 w tls flag line cpu0 cpu1 ok id q
	server "$side" stop
	server "$side" mode hold
	server "$side" tls on
	server "$side" restart
	for w in ${TLS_CLIENTS:-10 40}; do
		for tls in no yes; do
			flag=
			[ "$tls" = yes ] && flag=--starttls
			server "$side" clean
			settle
			cpu0=$(tree_cpu "$side")
			line=$(loadgen "$side" send --sessions "$w" --count "$TLS_COUNT" \
			    --size 4096 --max-seconds "$TLS_MAX_SECONDS" $flag \
			    --label "tls-$side-$round") || true
			cpu1=$(tree_cpu "$side")
			ok=$(field ok "$line")
			id="side=$(side_name "$side") round=$round clients=$w starttls=$tls"
			q=$(server "$side" qcount)
			if [ "${ok:-0}" != "$TLS_COUNT" ] || [ "$q" -lt "$TLS_COUNT" ]; then
				say "  $id: $ok of $TLS_COUNT sessions, $q queued: $line"
				record $id -- unfinished=failed
				continue
			fi
			record $id -- sessions_per_s="$(field sessions_per_s "$line")" \
			    cpu_ms_per_session="$(per_item "$cpu0" "$cpu1" "$TLS_COUNT")" \
			    sess_p50_ms="$(field sess_p50_ms "$line")" \
			    sess_p99_ms="$(field sess_p99_ms "$line")"
		done
	done
	server "$side" clean
	server "$side" tls off
	server "$side" stop
}

alternate tls_run
