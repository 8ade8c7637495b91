#!/usr/bin/env bash
# vm-stress.sh: N VM-mode lifecycles under load, looking for hangs (issue:
# "a stress test of a few hundred VM-mode runs under load finds none").
# Boots the nested test VM (rootfs-tools/nested-vm.sh: real, emulated KVM)
# and runs `rootfs-tools/vm-tests.sh --stress N` there: a run to exit, a run
# ended by kill TERM 0-4 s after create, and create/start/kill KILL/delete in
# turn, beside a CPU hog, each bounded at 90 s, each checked to leave nothing
# behind. Prints each failure with its guest console tail, the medians, p90
# and maxima per kind, and exits non-zero on any failure. Not part of the
# test suite: 200 runs take about half an hour under QEMU TCG.
#
#   bench/vm-stress.sh            # 200 runs
#   N=60 BUILD=0 bench/vm-stress.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
N=${N:-200}
[ "$(id -u)" = 0 ] || { echo "vm-stress.sh: run as root" >&2; exit 1; }
if [ "${BUILD:-1}" = 1 ]; then (cd "$repo" && cargo build --workspace --release --quiet); fi
bin=$repo/target/x86_64-unknown-linux-gnu/release
kernel=${VESSEL_VM_KERNEL:-/var/lib/vessel/kernel/vmlinux}
# Installs a missing kernel, and checks vessel's default one has its modules.
if [ -z "${VESSEL_VM_KERNEL:-}" ] || [ ! -f "$kernel" ]; then "$repo/rootfs-tools/guest-kernel.sh" "$kernel"; fi
# The kernel's modules (virtio), which the launcher finds beside it.
kfiles=(--file "$kernel:/var/lib/vessel/kernel/vmlinux")
if [ -d "$kernel.modules" ]; then kfiles+=(--file "$kernel.modules:/var/lib/vessel/kernel/vmlinux.modules"); fi
# virtiofsd, which VM mode runs for every VM (vm-tests.sh finds it at /vessel/virtiofsd).
"$repo/rootfs-tools/virtiofsd.sh" >/dev/null
kfiles+=(--file "/var/lib/vessel/bin/virtiofsd:/vessel/virtiofsd")

work=$(mktemp -d /tmp/vessel-vm-stress.XXXXXX)
trap 'rm -rf "$work"' EXIT
for b in vessel vessel-agent vessel-vmm; do strip -o "$work/$b" "$bin/$b"; done
# About 10 s a run under TCG with the hog, plus boot; the bound is for a
# test VM that froze.
"$repo/rootfs-tools/nested-vm.sh" --timeout $((600 + N * 20)) --mem 2048 --cpus 2 \
  --file "$work/vessel:/vessel/vessel" --file "$work/vessel-agent:/vessel/vessel-agent" \
  --file "$work/vessel-vmm:/vessel/vessel-vmm" "${kfiles[@]}" \
  --file "$repo/rootfs-tools/vm-tests.sh:/vessel/vm-tests.sh" \
  -- sh /vessel/vm-tests.sh --stress "$N"
