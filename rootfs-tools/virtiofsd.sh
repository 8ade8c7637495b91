#!/usr/bin/env bash
# virtiofsd.sh [DEST]: install virtiofsd, the vhost-user virtio-fs backend that VM mode runs
# for each VM to share the bundle's rootfs and its volumes with the guest.
#
# Builds the Rust virtiofsd (crates.io, 1.x) with `cargo install --locked` into a scratch root
# and copies the binary to DEST (default /var/lib/vessel/bin/virtiofsd), where vessel looks for
# it. Idempotent: does nothing when DEST already runs and reports a 1.x version.
# Needs (Debian): cargo, libseccomp-dev, libcap-ng-dev, pkg-config.
set -euo pipefail

dest=${1:-/var/lib/vessel/bin/virtiofsd}
version=${VIRTIOFSD_VERSION:-^1}
die() { echo "virtiofsd: $*" >&2; exit 2; }

if [ -x "$dest" ] && "$dest" --version 2>/dev/null | grep -q '^virtiofsd 1\.'; then
  echo "virtiofsd: $dest already installed ($("$dest" --version | head -1))"
  exit 0
fi

command -v cargo >/dev/null || die "missing cargo (install a Rust toolchain)"
command -v pkg-config >/dev/null || die "missing pkg-config (apt-get install pkg-config)"
pkg-config --exists libseccomp || die "missing libseccomp (apt-get install libseccomp-dev)"
pkg-config --exists libcap-ng || die "missing libcap-ng (apt-get install libcap-ng-dev)"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/virtiofsd.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "virtiofsd: building virtiofsd $version with cargo install (a few minutes)"
CARGO_TARGET_DIR="$work/target" cargo install virtiofsd --version "$version" --locked \
  --root "$work/root" >"$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; die "cargo install virtiofsd failed"; }
[ -x "$work/root/bin/virtiofsd" ] || die "cargo install left no bin/virtiofsd"

mkdir -p "$(dirname "$dest")"
install -m 0755 "$work/root/bin/virtiofsd" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "virtiofsd: installed $dest ($("$dest" --version | head -1))"
