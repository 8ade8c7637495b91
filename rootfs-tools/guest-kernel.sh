#!/usr/bin/env bash
# guest-kernel.sh [DEST]: install the guest kernel for vessel's VM mode.
#
# Fetches Debian's linux-image-cloud-amd64 kernel package with `apt-get download`,
# unpacks it, and pulls the ELF vmlinux out of its bzImage (the payload is an LZ4
# frame in Debian 12's cloud kernel). vessel's VMM boots that ELF through its PVH
# entry. Installs to /var/lib/vessel/kernel/vmlinux unless DEST is given.
# Idempotent: does nothing when DEST already holds an ELF kernel.
# Needs (Debian): apt, dpkg, lz4.
set -euo pipefail

dest=${1:-/var/lib/vessel/kernel/vmlinux}
die() { echo "guest-kernel: $*" >&2; exit 2; }
is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }

if [ -f "$dest" ] && is_elf "$dest"; then
  echo "guest-kernel: $dest already installed"
  exit 0
fi

command -v lz4 >/dev/null || die "missing lz4 (apt-get install lz4)"
command -v apt-get >/dev/null || die "missing apt-get (a Debian host is needed to fetch linux-image-cloud-amd64)"
command -v dpkg-deb >/dev/null || die "missing dpkg-deb"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/guest-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The meta package names the versioned image package; refresh the lists only when needed.
pkg_of_meta() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
pkg=$(pkg_of_meta)
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(pkg_of_meta)
fi
[ -n "$pkg" ] || die "apt knows no linux-image-cloud-amd64 (is this Debian with a main archive in sources.list?)"

echo "guest-kernel: downloading $pkg"
(cd "$work" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null) ||
  die "apt-get download $pkg failed"
deb=$(ls "$work"/*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || die "apt-get download $pkg left no .deb"
dpkg-deb -x "$deb" "$work/pkg"
bz=$(ls "$work"/pkg/boot/vmlinuz-* 2>/dev/null | head -1)
[ -n "$bz" ] || die "$pkg holds no boot/vmlinuz-*"

# Find the LZ4 frame magic (02 21 4c 18, the legacy frame the kernel uses) inside the bzImage.
off=$(grep -obUaP '\x02\x21\x4c\x18' "$bz" | head -1 | cut -d: -f1)
[ -n "$off" ] || die "no LZ4 frame in $bz (is the kernel compressed with another method?)"
# lz4 stops with an error at the bzImage trailer after the frame; the ELF is complete by then.
tail -c +"$((off + 1))" "$bz" | lz4 -dc > "$work/vmlinux" 2>/dev/null || true
is_elf "$work/vmlinux" || die "decompressed payload of $bz is not an ELF file"

mkdir -p "$(dirname "$dest")"
install -m 0644 "$work/vmlinux" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "guest-kernel: installed $dest ($(stat -c %s "$dest") bytes, from $pkg)"
