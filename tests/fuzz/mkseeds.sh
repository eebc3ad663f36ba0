#!/bin/sh
# Make the seeds of tests/fuzz/corpus/ that come from files outside the
# tree (/work/shared/testdata: libipt's pttc corpus and real perf.data
# files) or from the harnesses themselves (BT_FUZZ_SEEDS). Run from the
# repository root after `make fuzz-build`; the result is committed, so
# the fuzz target needs none of this. Every seed stays under 64 KiB.
#
#   tests/fuzz/mkseeds.sh [TESTDATA]   (default /work/shared/testdata)
set -eu

td=${1:-/work/shared/testdata}
fb=${FUZZ_BUILD:-build-fuzz}
c=tests/fuzz/corpus
mkdir -p $c/pt $c/perfdata $c/events $c/bundle $c/kmes $c/elf

# PT: u16 code length, the code (mapped at 0x100000), the trace. A few
# cases of different packet mixes whose code is there (or that have
# none); bit 15 set on every other one picks the instruction flow
# decoder.
n=0
for t in bdm70-psb_fup-tip_pge call_direct-ret_compressed \
	 loop-tnt int-iret ptw-fup mtc tsc-tma-cbr-cyc psb-pip-psb \
	 ret_near_far tsx-abort fup-tip_pgd dump-all-packets tip_pgd-stop \
	 syscall-sysret tnt-tip_pgd_noip-sysret; do
	d=$td/libipt-corpus/cases/$t
	[ -f "$d/$t.pt" ] || continue
	raw=$(awk -F'\t' -v t=$t '$3 == t { print $6; exit }' \
		$td/libipt-corpus/manifest.tsv)
	case $raw in *:0x100000|-) ;; *) continue ;; esac
	len=0
	[ -f "$d/$t.bin" ] && len=$(stat -c %s "$d/$t.bin")
	[ "$len" -lt 32768 ] || continue
	[ $((n % 2)) = 1 ] && len=$((len | 0x8000))
	python3 -c "import sys; sys.stdout.buffer.write(
		($len).to_bytes(2, 'little'))" > $c/pt/$t
	[ -f "$d/$t.bin" ] && cat "$d/$t.bin" >> $c/pt/$t
	cat "$d/$t.pt" >> $c/pt/$t
	n=$((n + 1))
done

# perf.data: a pipe-mode file cut at a record boundary (still valid),
# and the first 16 KiB of the file-mode one (refused: truncated).
python3 - "$td/perfdata" $c/perfdata <<'PY'
import struct, sys
src, out = sys.argv[1], sys.argv[2]
b = open(src + '/perf.data.piped.intel_pt-4.14', 'rb').read()
off = 16
while off + 8 <= len(b):
    size = struct.unpack_from('<H', b, off + 6)[0]
    typ = struct.unpack_from('<I', b, off)[0]
    if typ == 71:	# PERF_RECORD_AUXTRACE: its data follows
        size += struct.unpack_from('<Q', b, off + 8)[0]
    if size == 0 or off + size > 60000:
        break
    off += size
open(out + '/piped-cut', 'wb').write(b[:off])
f = open(src + '/perf.data.intel_pt-4.14', 'rb').read()
open(out + '/file-16k', 'wb').write(f[:16384])
PY

# The harnesses that make their own seeds.
for h in events bundle kmes; do
	BT_FUZZ_SEEDS=$c/$h $fb/fuzz_$h -runs=0 $c/$h >/dev/null 2>&1 || true
done
# ELF: a small real program, and the same stripped.
cc -O1 -o $c/elf/hello tests/progs/hello.c
strip -o $c/elf/hello-stripped $c/elf/hello
chmod 644 $c/*/*
ls -l $c/*
