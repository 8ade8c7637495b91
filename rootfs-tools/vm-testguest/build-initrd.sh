#!/bin/sh
# Builds the test guest and an initramfs with it as /init.
# Usage: build-initrd.sh OUT_DIR   (writes OUT_DIR/testguest-initrd.cpio)
set -eu
out=${1:?usage: build-initrd.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
gcc -static -O2 -o "$root/init" "$here/testguest.c"
mkdir -p "$root/dev"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null) > "$out/testguest-initrd.cpio"
