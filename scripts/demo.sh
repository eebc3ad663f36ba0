#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The btrail demonstration (`make demo`): the main job, a crash captured.
# Usage: scripts/demo.sh /path/to/btrail
#
#   1. `btrail caps`: what this machine offers;
#   2. `btrail record` runs tests/progs/crash_nullfn (a call through a
#      null function pointer) with the best facility for a crash here
#      (step from main on a machine without Intel PT or BTS), prints which
#      facility and why, and exits with the program's status (139:
#      128 + SIGSEGV);
#   3. `btrail report` on the bundle (the way to the crash) when the
#      decoder exists, else `btrail info`.
#
# Exits non-zero when a step fails.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
	echo "usage: $0 /path/to/btrail" >&2
	exit 2
fi
BT=$1
PROGS=$(dirname "$BT")/tests/progs
PROG=$PROGS/crash_nullfn
TMP=$(mktemp -d /tmp/btrail-demo.XXXXXX)
BUNDLE=$TMP/crash.bundle

if [ -t 1 ]; then
	B=$'\e[1m' N=$'\e[0m'
else
	B="" N=""
fi

cleanup() {
	local rc=$?

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

[ -x "$PROG" ] || fail "$PROG is not built (make $PROG)"
echo "${B}btrail crash-capture demo${N}: $("$BT" --version)"

# ---------------------------------------------------------------------------
step "1. What can this machine trace?" \
     "Hardware branch trace (Intel PT, BTS, LBR) where it exists; the" \
     "software facilities step and pt-emu (ptrace single-step) everywhere."
printf '   $ btrail caps\n'
"$BT" caps 2>&1 | sed 's/^/   caps    | /'

# The best facility for a crash: auto's choice. Without hardware trace
# that is step: start it at main so the dynamic loader is not stepped.
START=()
if ! "$BT" caps 2>/dev/null | grep -Eq '^(pt|bts|lbr) +present'; then
	START=(--start-at main)
fi

# ---------------------------------------------------------------------------
step "2. Record a crashing program" \
     "crash_nullfn calls a handler through a table slot nobody filled in:" \
     "a call through a null function pointer. btrail record runs it under" \
     "a circular branch trace; when it dies of SIGSEGV the trace is frozen" \
     "and written as a bundle, and record exits with the program's status."
sed -n '/^handler_fn/,/^}/p' "${BTRAIL_SRCDIR:-$(dirname "$0")/..}/tests/progs/crash_nullfn.c" \
	2>/dev/null | sed 's/^/   source  | /' || true
printf '   $ btrail record -e auto %s-o crash.bundle -- crash_nullfn\n' \
	"${START[*]:+${START[*]} }"
rc=0
"$BT" record -e auto "${START[@]}" -o "$BUNDLE" -- "$PROG" \
	>"$TMP/program.log" 2>"$TMP/record.log" || rc=$?
sed 's/^/   program | /' "$TMP/program.log"
sed 's/^/   record  | /' "$TMP/record.log"
printf '   exit status: %d' "$rc"
if [ "$rc" -gt 128 ]; then
	printf ' (128 + %d: SIG%s)\n' $((rc - 128)) "$(kill -l $((rc - 128)))"
else
	printf '\n'
fi
[ "$rc" -eq 139 ] || fail "expected exit status 139 (SIGSEGV), got $rc"
grep -q 'facility ' "$TMP/record.log" || fail "record did not say which facility"
[ -d "$BUNDLE" ] || fail "no bundle $BUNDLE"

# ---------------------------------------------------------------------------
if "$BT" help 2>/dev/null | grep -q '^  report '; then
	step "3. The way to the crash" \
	     "btrail report: the signal and faulting instruction, the call" \
	     "stack rebuilt from the branches, and the last branches."
	printf '   $ btrail report crash.bundle\n'
	"$BT" report "$BUNDLE" 2>&1 | sed 's/^/   report  | /'
else
	step "3. What the bundle holds" \
	     "A CTF trace directory (babeltrace2 reads it) and btrail.json:" \
	     "machine, clock conversion, mapped images, and the trigger."
	printf '   $ btrail info crash.bundle\n'
	"$BT" info "$BUNDLE" 2>&1 | sed 's/^/   info    | /'
fi

step "Done: the bundle is removed."
