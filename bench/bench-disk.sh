#!/bin/sh
# Section "disk" of `make bench` (bench/README.md): the physical limit,
# durable 4 KiB writes per second on the file system of build/bench, with
# bench/diskbench.c: spool (tmp + fsync + rename + directory fsync: what a
# queue does before its 250), append (append + fdatasync: a log) and create
# (new file + fsync), 1 and 4 writers.  No server runs meanwhile.
# env: DISK_REPS (2) DISK_MODES ("spool append create") DISK_WRITERS
#      ("1 4") DISK_SECS (10 s per run) DISK_OPS (30000 per writer)
set -eu
. "$(dirname "$0")/lib.sh"
bench_init disk "disk: durable 4 KiB writes/s (the physical limit; no server running)"
DISK_REPS=${DISK_REPS:-2}
DISK_SECS=${DISK_SECS:-10}
DISK_OPS=${DISK_OPS:-30000}
server pf stop
server pn stop
for round in $(seq 1 "$DISK_REPS"); do
	for m in ${DISK_MODES:-spool append create}; do
		for w in ${DISK_WRITERS:-1 4}; do
			settle
			line=$(bounded $((DISK_SECS + 60)) "$BIN/diskbench" \
			    -d "$BENCH_OUT/disk" -m "$m" -w "$w" -t "$DISK_SECS" \
			    -n "$DISK_OPS") || true
			if [ -z "$(field ops_per_s "$line")" ]; then
				record side=disk round="$round" mode="$m" writers="$w" -- unfinished=failed
				continue
			fi
			record side=disk round="$round" mode="$m" writers="$w" -- \
			    ops_per_s="$(field ops_per_s "$line")" \
			    p50_us="$(field p50_us "$line")" p99_us="$(field p99_us "$line")"
		done
	done
done
