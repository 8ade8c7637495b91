#!/usr/bin/env bash
# demo.sh: set everything up and run vessel's main job on a built-in busybox
# bundle: once as a container, then the same bundle as a microVM where the
# host allows it (directly on hardware KVM; on a kvm_pvm host, inside the
# nested test VM, which has a real emulated KVM).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "demo: run as root (containers need it): sudo $0" >&2; exit 2; }

need_pkgs=()
for p in busybox-static jq cpio lz4 file qemu-system-x86 kmod; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing ${need_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

echo "== building vessel (release)"
(cd "$repo" && cargo build --workspace --release --bins -q)
bin=$repo/target/x86_64-unknown-linux-gnu/release
vessel=$bin/vessel

work=${DEMO_DIR:-/var/tmp/vessel-demo}
bundle=$work/bundle
mkdir -p "$work"
rm -rf "$bundle"
VESSEL=$vessel "$here/mkbundle.sh" "$bundle" sh -c \
  'echo "hello from $(hostname): pid $$, kernel $(uname -r), boot $(cat /proc/sys/kernel/random/boot_id)"; echo "cpus $(nproc), $(grep MemTotal /proc/meminfo)"'
jq '.hostname = "vessel-demo"' "$bundle/config.json" > "$bundle/c" && mv "$bundle/c" "$bundle/config.json"
root=$work/state

echo
echo "== 1. container mode: vessel run (namespaces, cgroups, seccomp on this kernel)"
echo "   host: kernel $(uname -r), boot $(cat /proc/sys/kernel/random/boot_id)"
"$vessel" --root "$root" run --bundle "$bundle" demo-container

echo
echo "== 2. the same bundle as a microVM (annotation vessel.sandbox=vm)"
jq '.annotations["vessel.sandbox"] = "vm" | .annotations["vessel.vm.vcpus"] = "2"' \
  "$bundle/config.json" > "$bundle/c" && mv "$bundle/c" "$bundle/config.json"
"$here/guest-kernel.sh" >/dev/null
# virtiofsd shares the bundle's rootfs with the guest (a cargo build the first time).
"$here/virtiofsd.sh" >/dev/null
if "$vessel" --root "$root" run --bundle "$bundle" demo-vm 2> "$work/vm.err"; then
  exit 0
fi
echo "   vessel refused VM mode here:"
sed 's/^/   | /' "$work/vm.err"
if [ -e /sys/module/kvm_pvm ]; then
  echo "   -> running it inside the nested test VM (QEMU TCG with a real emulated KVM; ~30 s)"
  "$here/nested-vm.sh" --cpus 2 --mem 2048 --timeout 600 \
    --file "$vessel:/vessel/vessel" --file "$bin/vessel-agent:/vessel/vessel-agent" --file "$bin/vessel-vmm:/vessel/vessel-vmm" \
    --file /var/lib/vessel/kernel/vmlinux:/var/lib/vessel/kernel/vmlinux \
    --file /var/lib/vessel/kernel/vmlinux.modules:/var/lib/vessel/kernel/vmlinux.modules \
    --file /var/lib/vessel/bin/virtiofsd:/var/lib/vessel/bin/virtiofsd \
    --file "$bundle:/vessel/bundle" \
    -- sh -c 'echo "   L1 kernel $(uname -r), boot $(cat /proc/sys/kernel/random/boot_id)"; /vessel/vessel run --bundle /vessel/bundle demo-vm'
fi
