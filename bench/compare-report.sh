#!/usr/bin/env bash
# compare-report.sh: the figures and plots of docs/compare.md in one command.
#
# 1. `vessel compare` on this host (container mode; the VM column says why the
#    host refuses VM mode where it does, e.g. kvm_pvm).
# 2. The same inside the nested test VM (rootfs-tools/nested-vm.sh: QEMU TCG
#    with emulated SVM), where both modes run. Those VM numbers are under
#    emulation and say nothing about VM speed on real hardware.
# Writes bench/results/compare-{host,nested}.{json,txt} and docs/img/compare-{host,nested}.svg.
#
# Usage: bench/compare-report.sh [--runs N] [--skip-nested]
# Env: IO_MIB (8), CPU_ITERS (2000000), SYSCALLS (50000), NET_MIB (16), NET_RTTS (1000):
#      kept small so the emulated runs finish in minutes; VESSEL_VM_KERNEL
#      (/var/lib/vessel/kernel/vmlinux).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 nested=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --skip-nested) nested=0; shift ;;
    *) echo "compare-report: unknown option $1" >&2; exit 2 ;;
  esac
done
io=${IO_MIB:-8} cpu=${CPU_ITERS:-2000000} sys=${SYSCALLS:-50000}
net_mib=${NET_MIB:-16} net_rtts=${NET_RTTS:-1000}
kernel=${VESSEL_VM_KERNEL:-/var/lib/vessel/kernel/vmlinux}

cargo build --workspace --bins >/dev/null
bin=target/x86_64-unknown-linux-gnu/debug
out=bench/results; mkdir -p "$out" docs/img
work=$(mktemp -d /var/tmp/compare-report.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A busybox bundle with the default spec.
rootfs-tools/mkrootfs.sh "$work/bundle/rootfs" >/dev/null
cp runtime-spec/config.json "$work/bundle/config.json"
params=(--runs "$runs" --io-mib "$io" --cpu-iters "$cpu" --syscalls "$sys" --net-mib "$net_mib" --net-rtts "$net_rtts")

echo "compare-report: host run" >&2
"$bin/vessel" compare "$work/bundle" "${params[@]}" --format json > "$out/compare-host.json"
"$bin/vessel" compare "$work/bundle" "${params[@]}" --mode container > "$out/compare-host.txt"
python3 bench/compare-plot.py "$out/compare-host.json" docs/img/compare-host.svg \
  "vessel compare on the host (container mode; VM mode refused here)"

if [ "$nested" = 1 ]; then
  # Installs a missing kernel, and checks vessel's default one has its modules.
  if [ -z "${VESSEL_VM_KERNEL:-}" ] || [ ! -f "$kernel" ]; then rootfs-tools/guest-kernel.sh "$kernel"; fi
  # The kernel's modules (virtio), which the launcher finds beside it.
  kfiles=(--file "$kernel:/var/lib/vessel/kernel/vmlinux")
  if [ -d "$kernel.modules" ]; then kfiles+=(--file "$kernel.modules:/var/lib/vessel/kernel/vmlinux.modules"); fi
  # virtiofsd, which VM mode runs for every VM.
  rootfs-tools/virtiofsd.sh >/dev/null
  kfiles+=(--file "/var/lib/vessel/bin/virtiofsd:/var/lib/vessel/bin/virtiofsd")
  # The network rows: compare's namespace and veth, vessel's tap and tc redirect need
  # iproute2 (the test VM's own ip is busybox's, and it has no tc) and these modules.
  for t in ip tc; do kfiles+=(--file "$(readlink -f /usr/sbin/$t):/usr/sbin/$t"); done
  for m in drivers/net/veth drivers/net/tun net/sched/sch_ingress net/sched/cls_matchall net/sched/act_mirred; do
    kfiles+=(--module "$m")
  done
  mkdir -p "$work/bin"
  for b in vessel vessel-agent vessel-vmm vessel-compare vessel-probe; do strip -o "$work/bin/$b" "$bin/$b"; done
  cat > "$work/in-vm.sh" <<EOS
export VESSEL_VM_KERNEL=/var/lib/vessel/kernel/vmlinux VESSEL_AGENT=/vessel/vessel-agent VESSEL_PROBE=/vessel/vessel-probe
/vessel/vessel compare /bundle ${params[*]} --timeout 600 --format json > /root/r.json; rc=\$?
/vessel/vessel compare /bundle ${params[*]} --timeout 600 > /root/r.txt
echo BEGIN-JSON; cat /root/r.json; echo END-JSON; echo BEGIN-TXT; cat /root/r.txt; echo END-TXT
exit \$rc
EOS
  echo "compare-report: nested VM run (minutes)" >&2
  rootfs-tools/nested-vm.sh --timeout 1800 --mem 2048 \
    --file "$work/bin/vessel:/vessel/vessel" --file "$work/bin/vessel-agent:/vessel/vessel-agent" \
    --file "$work/bin/vessel-probe:/vessel/vessel-probe" --file "$work/bin/vessel-vmm:/vessel/vessel-vmm" --file "$work/bin/vessel-compare:/vessel/vessel-compare" "${kfiles[@]}" \
    --file "$work/bundle:/bundle" --file "$work/in-vm.sh:/in-vm.sh" -- sh /in-vm.sh > "$work/nested.log" 2>&1 || true
  sed -n '/^BEGIN-JSON/,/^END-JSON/p' "$work/nested.log" | sed '1d;$d' > "$out/compare-nested.json"
  sed -n '/^BEGIN-TXT/,/^END-TXT/p' "$work/nested.log" | sed '1d;$d' > "$out/compare-nested.txt"
  if [ ! -s "$out/compare-nested.json" ]; then
    tail -30 "$work/nested.log" >&2; echo "compare-report: no report from the nested VM" >&2; exit 1
  fi
  python3 bench/compare-plot.py "$out/compare-nested.json" docs/img/compare-nested.svg \
    "vessel compare inside the nested test VM (QEMU TCG: VM numbers are emulated, not representative)"
fi
echo "compare-report: wrote $out/compare-*.{json,txt} and docs/img/compare-*.svg" >&2
