#!/bin/sh
# Section "dkim" of `make bench` (bench/README.md): relay end to end, load
# -> server -> smtp-sink, 4 KiB messages from bench@example.org, with
# Postern signing every message with DKIM (RSA-2048, Ed25519) or not, and
# Postfix relaying the same load WITHOUT a milter (Postfix signs nothing
# by itself; with OpenDKIM as a milter it would do more work than here).
# Each round runs Postfix, then Postern unsigned, RSA-2048, unsigned,
# Ed25519 (each signed run right after an unsigned one: A B A B).
# Two tables:
#   dkim          sides unsigned / signed, rows signing=rsa2048|ed25519:
#                 ratio = signed / unsigned (targets: RSA-2048 >= 0.8,
#                 Ed25519 >= 0.9 of the unsigned rate)
#   dkim-postfix  sides postfix / postern, rows signing=none|rsa2048|
#                 ed25519 (the round's one Postfix run in every row)
# Figures per run: e2e_msgs_per_s, accept_msgs_per_s, cpu_ms_per_msg (the
# whole server tree) and, for Postern, qmgr_cpu_ms_per_msg: its queue
# manager, the one process that signs (signed minus unsigned = what
# signing costs per message).  Runs that did not drain are unfinished.
# env: DKIM_COUNT (5000 messages per run) DKIM_SESSIONS (10)
#      DKIM_MAX_SECONDS (60 + DKIM_COUNT / 10) RELAY_STALL (45)
set -eu
. "$(dirname "$0")/lib.sh"
RELAY_COUNT=${DKIM_COUNT:-5000}
RELAY_SIZE=4096
RELAY_MAX_SECONDS=${DKIM_MAX_SECONDS:-$((60 + RELAY_COUNT / 10))}
RELAY_STALL=${RELAY_STALL:-45}
CONC=${DKIM_SESSIONS:-10}
bench_init dkim-postfix "DKIM signing beside Postfix without a milter: relay end to end ($RELAY_COUNT x $RELAY_SIZE bytes, $CONC sessions; Postfix signs nothing, its one run per round is in every row)"
PF_RES=$RES
bench_init dkim "DKIM signing: Postern relay end to end, unsigned vs signed ($RELAY_COUNT x $RELAY_SIZE bytes, $CONC sessions; targets: RSA-2048 >= 0.8, Ed25519 >= 0.9)"
# run-bench.sh lists "dkim" in the summary order; the other table follows
[ -f "$R/order" ] && ! grep -qx dkim-postfix "$R/order" && echo dkim-postfix >> "$R/order"

# CPU seconds of Postern's queue manager: serve forks it first, so it is
# the master's child with the lowest PID.
qmgr_cpu() {
	"$PY" - "$(server pn pid)" <<'PY'
import os, sys
root, hz, kids = int(sys.argv[1]), os.sysconf("SC_CLK_TCK"), []
for d in os.listdir("/proc"):
    try:
        with open(f"/proc/{d}/stat") as f:
            s = f.read()
    except (OSError, ValueError):
        continue
    f = s[s.rindex(")") + 2:].split()
    if d.isdigit() and int(f[1]) == root:
        kids.append((int(d), f))
kids.sort()
print(f"{(int(kids[0][1][11]) + int(kids[0][1][12])) / hz:.2f}" if kids else "0")
PY
}

# one_run pf|pn KEYTYPE ROUND: one relay run; echoes "FIGURES" or
# "unfinished=WHY" for record.
one_run() {
	local side=$1 kt=$2 q0 q1
	server "$side" stop
	server "$side" mode relay
	server "$side" tls off
	[ "$side" = pn ] && server pn dkim "$kt"
	server "$side" restart
	q0=0
	[ "$side" = pn ] && q0=$(qmgr_cpu)
	relay_once "$side" "$CONC"
	if [ -n "$WHY" ]; then
		FIGS="unfinished=$WHY"
	else
		FIGS="e2e_msgs_per_s=$E2E accept_msgs_per_s=$ACCEPT cpu_ms_per_msg=$CPU_MS"
		if [ "$side" = pn ]; then
			q1=$(qmgr_cpu)
			FIGS="$FIGS qmgr_cpu_ms_per_msg=$(per_item "$q0" "$q1" "$RELAY_COUNT")"
		fi
	fi
	server "$side" stop
}

# record_pf ID... -- FIGURES: a result line in the dkim-postfix table.
record_pf() {
	echo "section=dkim-postfix $*" >> "$PF_RES"
	echo "  dkim-postfix: $*" >&2
}

id="size=$RELAY_SIZE sessions=$CONC"
sink_start
for round in $(seq 1 "$REPS"); do
	# Postfix first: the first side of a table is the ratio's denominator
	one_run pf none "$round"
	for kt in none rsa2048 ed25519; do
		# shellcheck disable=SC2086
		record_pf side="$(side_name pf)" round="$round" signing="$kt" \
		    $id -- $FIGS
	done
	for kt in rsa2048 ed25519; do
		one_run pn none "$round"
		# shellcheck disable=SC2086
		record side=unsigned round="$round" signing="$kt" $id -- $FIGS
		if [ "$kt" = rsa2048 ]; then
			# shellcheck disable=SC2086
			record_pf side=postern round="$round" signing=none $id -- \
			    $FIGS
		fi
		one_run pn "$kt" "$round"
		# shellcheck disable=SC2086
		record side=signed round="$round" signing="$kt" $id -- $FIGS
		# shellcheck disable=SC2086
		record_pf side=postern round="$round" signing="$kt" $id -- $FIGS
	done
done
sink_stop
server pn dkim none
