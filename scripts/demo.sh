#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The KMES demonstration (`make demo`), until the collector exists: the ring
# library across processes, the way the collector and its consumers will
# use it. Usage: scripts/demo.sh /path/to/btrail
#
#   1. create a session with one ring per CPU;
#   2. start a consumer in another process, printing per-ring rates,
#      sequence gaps and the ring generation once a second;
#   3. run a producer on every CPU's ring;
#   4. resize the session, run a producer again: the consumer follows the
#      new generation;
#   5. kill -9 a producer mid-stream; a consumer attached afterwards reads
#      every committed event still in the rings, none torn.
#
# Exits non-zero when a step fails. Takes about 15 seconds.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
	echo "usage: $0 /path/to/btrail" >&2
	exit 2
fi
BT=$1
NAME="demo-$$-$RANDOM"
TMP=$(mktemp -d /tmp/btrail-demo.XXXXXX)
CONSUMER=""
PRODUCER=""

if [ -t 1 ]; then
	B=$'\e[1m' N=$'\e[0m'
else
	B="" N=""
fi

cleanup() {
	local rc=$?

	for pid in $CONSUMER $PRODUCER; do
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	"$BT" kmes destroy "$NAME" --force 2>/dev/null || true
	rm -rf "$TMP"
	if [ $rc -ne 0 ]; then
		echo "${B}demo FAILED (exit $rc)${N}" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
	printf '\n%s== %s%s\n' "$B" "$1" "$N"
	shift
	for line in "$@"; do
		printf '   %s\n' "$line"
	done
}

fail() {
	echo "${B}demo: $*${N}" >&2
	exit 1
}

# Show a command, then run it with its output indented under a label.
run() {
	local label=$1

	shift
	printf '   $ btrail %s\n' "$*"
	"$BT" "$@" 2>&1 | sed -u "s/^/   $label | /"
}

CPUS=$(getconf _NPROCESSORS_ONLN)
echo "${B}btrail KMES demo${N}: $("$BT" --version), $CPUS online CPUs, session $NAME"

# ---------------------------------------------------------------------------
step "1. Create a ring session: one 1 MiB ring per CPU" \
     "A session is a directory of ring files in shared memory; every ring" \
     "is a circular buffer of events with sequence numbers."
run "create  " kmes create "$NAME" --capacity 1M
run "rings   " rings "$NAME"

# ---------------------------------------------------------------------------
step "2. Start a consumer in another process" \
     "Once a second it prints, per ring: event rate, last sequence read," \
     "sequences it missed (the producer overwrote them before it read them:" \
     "'lapped'), and the ring's generation."
printf '   $ btrail kmes drain %s --follow --interval 1 --quiet &\n' "$NAME"
"$BT" kmes drain "$NAME" --follow --interval 1 --quiet \
	> >(tee "$TMP/consumer.log" | sed -u 's/^/   consumer | /') 2>&1 &
CONSUMER=$!
sleep 0.5
kill -0 "$CONSUMER" 2>/dev/null || fail "the consumer did not start"

# ---------------------------------------------------------------------------
step "3. Produce on every CPU's ring at full speed" \
     "One thread per ring, pinned to its CPU, emitting batches of 64" \
     "self-checking events (msgpack payloads with their sequence and a checksum)."
run "producer" kmes emit "$NAME" --all-slots --count 2M --batch 64 --size 200
sleep 1.5

# ---------------------------------------------------------------------------
step "4. Resize every ring to 4 MiB, then produce again" \
     "The resize swaps each ring for a new one (generation 2); the consumer" \
     "finishes the old ring, re-attaches and resumes by sequence number."
run "resize  " kmes resize "$NAME" 4M
sleep 1.5
run "producer" kmes emit "$NAME" --all-slots --count 1M --size 200
sleep 1.5

printf '   (stopping the consumer: its summary follows)\n'
kill -INT "$CONSUMER"
rc=0
wait "$CONSUMER" || rc=$?
CONSUMER=""
# Let its last lines through the pipe before looking at them.
for _ in $(seq 50); do
	grep -q '^total:' "$TMP/consumer.log" && break
	sleep 0.1
done
[ $rc -eq 0 ] || fail "the consumer exited with status $rc"
grep -q ' generation 2 ' "$TMP/consumer.log" ||
	fail "the consumer never saw generation 2"
awk '$1 ~ /^[0-9]+$/ && NF >= 14 && ($9 != 0 || $10 != 2 || $11 < 1) {
	bad = 1 } END { exit bad }' "$TMP/consumer.log" ||
	fail "the consumer saw corruption or did not follow the resize"

# ---------------------------------------------------------------------------
step "5. Kill a producer with SIGKILL mid-stream" \
     "Rings are files: what the producer committed survives it. Nothing is" \
     "half-visible: an event becomes visible only when write_pos moves past it."
printf '   $ btrail kmes emit %s --all-slots --count 100M --batch 64 --size 200 &\n' "$NAME"
"$BT" kmes emit "$NAME" --all-slots --count 100M --batch 64 --size 200 \
	>"$TMP/producer.log" 2>&1 &
PRODUCER=$!
sleep 1
kill -0 "$PRODUCER" 2>/dev/null || fail "the producer ended before the kill"
printf '   $ kill -9 %s\n' "$PRODUCER"
kill -9 "$PRODUCER"
rc=0
wait "$PRODUCER" 2>/dev/null || rc=$?
PRODUCER=""
[ $rc -eq 137 ] || fail "the producer was not killed by SIGKILL (status $rc)"

printf '\n   The rings after the kill (the producer is gone):\n'
"$BT" rings "$NAME" | tee "$TMP/rings.log" | sed 's/^/   rings    | /'

printf '\n   A NEW consumer attaches and reads everything left in the rings,\n'
printf '   checking every payload:\n'
rc=0
run "consumer" kmes drain "$NAME" --quiet --verify | tee "$TMP/drain.log" || rc=$?
[ $rc -eq 0 ] || fail "the new consumer exited with status $rc"
grep -q ', 0 corrupt, 0 payloads failed verification$' "$TMP/drain.log" ||
	fail "the new consumer found corrupt or torn events"

# Per ring: bytes read == bytes between tail_pos and write_pos, no gaps.
awk '
	FNR == 1 { file++ }
	file == 1 && $1 ~ /^[0-9]+$/ { live[$1] = $9 }
	# "consumer | slot events bytes first..last missed ..."
	file == 2 && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ {
		slot = $3; bytes[slot] = $5; missed[slot] = $7
	}
	END {
		for (s in live) {
			if (!(s in bytes) || bytes[s] != live[s] || missed[s] != 0) {
				printf "   ring %s: read %s of %s bytes, %s missed\n",
				       s, bytes[s], live[s], missed[s]
				bad = 1
			}
			n++
		}
		if (!n)
			bad = 1
		exit bad
	}' "$TMP/rings.log" "$TMP/drain.log" ||
	fail "the new consumer did not read every committed event"
echo
echo "   Every ring: the new consumer read all the bytes between tail_pos and"
echo "   write_pos, with no sequence gap, and every payload checksum held."
echo "   (Older events were overwritten while the producer ran: 'lost'.)"

step "Done: the session is removed."
