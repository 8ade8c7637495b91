#!/usr/bin/env bash
# guest-kernel.sh [DEST]: install the guest kernel for vessel's VM mode.
#
# Fetches Debian's linux-image-cloud-amd64 kernel package with `apt-get download`,
# unpacks it, and pulls the ELF vmlinux out of its bzImage (the payload is an LZ4
# frame in Debian 12's cloud kernel). vessel's VMM boots that ELF through its PVH
# entry. Installs to /var/lib/vessel/kernel/vmlinux unless DEST is given.
#
# That kernel has virtio only as modules, so the same package's virtio-mmio,
# console, virtio-fs and virtio-net modules (with their dependencies, ordered
# by `modinfo -F depends`) go to DEST.modules/: the .ko files, `load-order`
# (one file name a line, dependencies first) and `stamp` (the package and the
# kernel's banner). vessel puts them in the guest's initramfs and the agent
# loads them first thing. Kernel and modules must come from one build.
# Idempotent: does nothing when DEST holds an ELF kernel and DEST.modules/ a
# complete set whose stamp names that kernel; otherwise installs both again.
# Needs (Debian): apt, dpkg, lz4, kmod (modinfo).
set -euo pipefail

dest=${1:-/var/lib/vessel/kernel/vmlinux}
mods=$dest.modules
# What the guest needs (virtio-mmio transport, console, virtio-fs, virtio-net);
# their dependencies are added from modinfo.
roots="virtio_mmio virtio_console virtiofs virtio_net"
die() { echo "guest-kernel: $*" >&2; exit 2; }
is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }
# The kernel's version banner, which names its release and build.
banner_of() { grep -ao 'Linux version [^ ]* ([^)]*) .*' "$1" 2>/dev/null | head -1; }

installed() {
  [ -f "$dest" ] && is_elf "$dest" || return 1
  [ -f "$mods/stamp" ] && [ -f "$mods/load-order" ] || return 1
  local f
  while read -r f; do [ -f "$mods/$f" ] || return 1; done < "$mods/load-order"
  [ "$(sed -n 's/^banner=//p' "$mods/stamp")" = "$(banner_of "$dest")" ]
}

# One install at a time (tests may call this concurrently): a lock on DEST's directory.
mkdir -p "$(dirname "$dest")"
if command -v flock >/dev/null; then
  exec 9<"$(dirname "$dest")"
  flock 9
fi

if installed; then
  echo "guest-kernel: $dest and $mods/ already installed"
  exit 0
fi
[ -e "$dest" ] && echo "guest-kernel: $dest or $mods/ missing or from another build: installing both"

command -v lz4 >/dev/null || die "missing lz4 (apt-get install lz4)"
command -v apt-get >/dev/null || die "missing apt-get (a Debian host is needed to fetch linux-image-cloud-amd64)"
command -v dpkg-deb >/dev/null || die "missing dpkg-deb"
modinfo=$(command -v modinfo || command -v /sbin/modinfo) || die "missing modinfo (apt-get install kmod)"

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
pkgver=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" "$work/pkg"
bz=$(ls "$work"/pkg/boot/vmlinuz-* 2>/dev/null | head -1)
[ -n "$bz" ] || die "$pkg holds no boot/vmlinuz-*"
release=${bz##*/vmlinuz-}

# Find the LZ4 frame magic (02 21 4c 18, the legacy frame the kernel uses) inside the bzImage.
off=$(grep -obUaP '\x02\x21\x4c\x18' "$bz" | head -1 | cut -d: -f1)
[ -n "$off" ] || die "no LZ4 frame in $bz (is the kernel compressed with another method?)"
# lz4 stops with an error at the bzImage trailer after the frame; the ELF is complete by then.
tail -c +"$((off + 1))" "$bz" | lz4 -dc > "$work/vmlinux" 2>/dev/null || true
is_elf "$work/vmlinux" || die "decompressed payload of $bz is not an ELF file"
banner=$(banner_of "$work/vmlinux")
case "$banner" in
  "Linux version $release "*) ;;
  *) die "the vmlinux in $bz has no 'Linux version $release' banner (found: ${banner:-none})" ;;
esac

# --- The modules, dependencies first. --------------------------------------
kdir=$work/pkg/lib/modules/$release
[ -d "$kdir/kernel" ] || die "$pkg holds no lib/modules/$release/kernel"
# name (with - and _ alike, as the kernel sees them) -> file
find "$kdir/kernel" -name '*.ko*' | while read -r f; do
  n=${f##*/}; n=${n%%.ko*}; echo "${n//-/_} $f"
done > "$work/index"
mkdir "$work/modules"
: > "$work/order"
add() { # add NAME after its dependencies; 'seen' guards against a cycle
  local m=$1 f d
  grep -qx "$m" "$work/order" && return 0
  grep -qx "$m" "$work/seen" 2>/dev/null && die "module dependency cycle through $m"
  echo "$m" >> "$work/seen"
  f=$(awk -v m="$m" '$1 == m {print $2; exit}' "$work/index")
  if [ -z "$f" ]; then
    grep -q "/${m}\.ko\$" "$kdir/modules.builtin" 2>/dev/null && return 0 # built in
    die "$pkg has no module $m (needed for the guest's virtio devices)"
  fi
  case "$f" in *.ko) ;; *) die "$f is compressed; the agent loads only plain .ko files" ;; esac
  vm=$("$modinfo" -F vermagic "$f") || die "modinfo $f failed"
  [ "${vm%% *}" = "$release" ] || die "$f is built for ${vm%% *}, not $release"
  for d in $("$modinfo" -F depends "$f" | tr ',' ' '); do add "${d//-/_}"; done
  cp "$f" "$work/modules/"
  echo "$m" >> "$work/order"
  echo "${f##*/}" >> "$work/modules/load-order"
}
for m in $roots; do add "$m"; done
printf 'package=%s\nversion=%s\nbanner=%s\n' "$pkg" "$pkgver" "$banner" > "$work/modules/stamp"

# --- Install: both next to each other, each renamed into place. -------------
rm -rf "$mods.tmp.$$" "$mods.old.$$"
cp -r "$work/modules" "$mods.tmp.$$"
chmod 0755 "$mods.tmp.$$" && chmod 0644 "$mods.tmp.$$"/*
install -m 0644 "$work/vmlinux" "$dest.tmp.$$"
if [ -e "$mods" ]; then mv "$mods" "$mods.old.$$"; fi
mv -T "$mods.tmp.$$" "$mods"
mv -f "$dest.tmp.$$" "$dest"
rm -rf "$mods.old.$$"
echo "guest-kernel: installed $dest ($(stat -c %s "$dest") bytes, from $pkg $pkgver)"
echo "guest-kernel: installed $mods/: $(paste -sd" " "$mods/load-order")"
