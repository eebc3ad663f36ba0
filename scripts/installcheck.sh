#!/bin/sh
# Install into a scratch prefix and build a program against the installed
# headers and library through pkg-config, statically and dynamically: what
# a user of `make install PREFIX=...` does.
set -eu
build=${1:-build}
# A sanitized library needs the sanitizer runtime in the program too.
san=${SAN_FLAGS:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make --no-print-directory -s install PREFIX="$tmp/usr" BUILD="$build" \
	SANITIZE="$([ -n "$san" ] && echo 1)" >/dev/null
test -x "$tmp/usr/bin/btrail"
test -f "$tmp/usr/share/man/man1/btrail.1"
"$tmp/usr/bin/btrail" --version >/dev/null

cat > "$tmp/user.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <btrail/kmes.h>
#include <btrail/errno.h>
int main(void)
{
	uint64_t cap;
	/* No such session: the installed library answers ENOENT. */
	if (kmes_attach("btrail-installcheck-none", 0, &cap) >= 0 ||
	    errno != ENOENT) {
		fprintf(stderr, "unexpected: %s\n", bt_strerror(errno));
		return 1;
	}
	return 0;
}
C
export PKG_CONFIG_PATH="$tmp/usr/lib/pkgconfig"
# shellcheck disable=SC2046
cc $san -o "$tmp/user-dyn" "$tmp/user.c" $(pkg-config --cflags --libs btrail)
LD_LIBRARY_PATH="$tmp/usr/lib" "$tmp/user-dyn"
# shellcheck disable=SC2046
cc $san -o "$tmp/user-static" "$tmp/user.c" $(pkg-config --cflags btrail) \
	"$tmp/usr/lib/libbtrail.a" $(pkg-config --libs --static btrail | sed 's/-lbtrail//')
"$tmp/user-static"
# Only the API is exported from the shared library.
if nm -D --defined-only "$tmp/usr/lib/libbtrail.so" | awk '{print $3}' |
   grep -v -e '^bt_' -e '^kmes_' -e '^BTRAIL_' | grep -q .; then
	echo "installcheck: libbtrail.so exports non-API symbols" >&2
	exit 1
fi
echo "installcheck: install, pkg-config and linking OK"
