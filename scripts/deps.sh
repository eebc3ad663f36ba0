#!/bin/sh
# Install the Debian packages btrail needs to build and test, when they are
# missing. Run as root on a fresh Debian 12; as another user it only says
# what to install.
set -eu

PKGS="build-essential pkg-config libipt-dev libcapstone-dev libelf-dev
libdw-dev libnuma-dev libmsgpack-dev uuid-dev libcriterion-dev babeltrace2
libjson-c-dev clang libclang-rt-14-dev gdb"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	     grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root; run: sudo apt-get install -y$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! apt-get install -y --no-install-recommends $missing; then
	apt-get update
	apt-get install -y --no-install-recommends $missing
fi
