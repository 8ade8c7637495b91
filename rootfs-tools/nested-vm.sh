#!/usr/bin/env bash
# nested-vm.sh: run a command inside a throw-away Linux VM that has a real
# (emulated) KVM and cgroup v2, for vessel's VM-mode tests.
#
# Why: a CI runner or dev box may have no /dev/kvm, or (as on kvm_pvm hosts)
# one that cannot boot a stock Linux guest. This boots Debian's cloud kernel
# under QEMU's software CPU (`-accel tcg -cpu max`, which exposes AMD SVM),
# loads kvm-amd inside, mounts cgroup2 at /sys/fs/cgroup, copies in the files
# you name (with the shared libraries of dynamic executables among them), runs
# your command as root, prints its output and exits with its status.
#
# Usage: nested-vm.sh [--mem MiB] [--cpus N] [--timeout S] [--file SRC[:DEST]]...
#                     [--module PATH]... [--host-root] -- CMD [ARG]...
#   --module loads the kernel's module PATH (below lib/modules/VER/kernel,
#   no .ko: drivers/block/loop) at boot, after kvm's.
#   --file copies SRC (file or directory) to DEST in the VM (default: the same
#   absolute path). Paths under /tmp stay visible: the VM's /tmp is a plain
#   directory of its RAM root, not a fresh tmpfs mounted over copied files.
#   Inside the VM: /dev/kvm, cgroup2 with controllers enabled, busybox for the
#   usual commands, $NESTED_VM=1.
#   --host-root: the command runs in this host's root filesystem instead
#   (only that one: other host mounts are not seen), shared read-only over
#   virtio-fs (virtiofsd on the host, $VESSEL_VIRTIOFSD or
#   /var/lib/vessel/bin/virtiofsd) under an overlay whose upper layer is the
#   VM's RAM, made the root of a mount namespace, with its own /proc, /sys,
#   cgroup2, /dev, /run, /tmp, /var/tmp (tmpfs, so overlayfs users such as
#   podman can stack on them), the VM kernel's modules at /lib/modules/VER
#   and module autoloading (iptables, bridge, veth) through the host's
#   modprobe: the host's installed tools (podman, containerd, iptables) run
#   in the VM. --file copies SRC from the shared root to DEST inside the
#   overlay. A CPU stuck for 60 s panics the VM. $NESTED_VM_HOST_ROOT=1.
# Env: NESTED_VM_CACHE (default /var/cache/vessel/nested-vm) keeps the kernel package.
# Needs (Debian): qemu-system-x86 busybox-static cpio gzip, apt for the kernel package.
# Exit: the command's status; 124 on timeout; 125 when the VM ended without a status;
# 2 for a missing tool or kernel.
set -euo pipefail

mem=2048 cpus=1 timeout_s=900 host_root=0
files=() modules=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mem) mem=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --module) modules+=("$2"); shift 2 ;;
    --host-root) host_root=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "nested-vm: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "nested-vm: no command given (see --help)" >&2; exit 2; }

die() { echo "nested-vm: $*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing $1 (apt-get install $2)"; }
need qemu-system-x86_64 qemu-system-x86
need cpio cpio
need gzip gzip
need timeout coreutils
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || die "missing $busybox (apt-get install busybox-static)"

# --- The L1 kernel: Debian's cloud kernel package, fetched once. -------------
cache=${NESTED_VM_CACHE:-/var/cache/vessel/nested-vm}
kdir=$cache/kernel
if [ ! -d "$kdir/boot" ]; then
  need apt-get apt
  need dpkg-deb dpkg
  mkdir -p "$cache"
  pkg_of_meta() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
  pkg=$(pkg_of_meta)
  if [ -z "$pkg" ]; then apt-get update -qq >/dev/null 2>&1 || true; pkg=$(pkg_of_meta); fi
  [ -n "$pkg" ] || die "apt knows no linux-image-cloud-amd64: cannot fetch the VM's kernel (a Debian apt source is needed)"
  dl=$(mktemp -d "$cache/dl.XXXXXX")
  (cd "$dl" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null 2>&1) ||
    { rm -rf "$dl"; die "apt-get download $pkg failed (offline, or no mirror?)"; }
  dpkg-deb -x "$dl"/*.deb "$dl/x" && rm -rf "$kdir" && mv "$dl/x" "$kdir"
  rm -rf "$dl"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* 2>/dev/null | head -1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $kdir (remove it to fetch again)"
kver=${vmlinuz##*/vmlinuz-}
mods=$kdir/lib/modules/$kver/kernel

# --- The VM's initramfs. Work dir off /tmp so it never shadows --file paths. --
work=$(mktemp -d "${NESTED_VM_WORK:-/var/tmp}/nested-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,run,etc,root,nested/mods,lib64,usr/lib,usr/bin,usr/sbin}
mkdir -p -m 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
# --host-root: the virtio-pci transport, virtio-fs and overlayfs are modules
# of the cloud kernel, loaded before anything else (dependencies first).
root_mods=()
if [ "$host_root" = 1 ]; then
  root_mods=(drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
             drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci fs/fuse/fuse
             fs/fuse/virtiofs fs/overlayfs/overlay)
fi
for m in ${root_mods[@]+"${root_mods[@]}"} virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd ${modules[@]+"${modules[@]}"}; do
  src=$(ls "$mods/$m.ko"* 2>/dev/null | head -1)
  [ -n "$src" ] || die "kernel module $m missing from $kdir"
  case "$src" in
    *.xz) xz -dc "$src" > "$root/nested/mods/$(basename "$m").ko" ;;
    *.zst) zstd -dc "$src" > "$root/nested/mods/$(basename "$m").ko" ;;
    *) cp "$src" "$root/nested/mods/" ;;
  esac
done
load=""
for m in ${root_mods[@]+"${root_mods[@]}"}; do load="$load $(basename "$m")"; done
load="$load irqbypass kvm kvm-amd"
for m in ${modules[@]+"${modules[@]}"}; do load="$load $(basename "$m")"; done
echo "$load" > "$root/nested/mods/order"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"

copy_libs() { # the shared libraries a dynamic ELF executable needs
  ldd "$1" 2>/dev/null | awk '/=> \//{print $3} /ld-linux/ && !/=>/{print $1}' | while read -r lib; do
    [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
  done
}
for spec in ${files[@]+"${files[@]}"}; do
  src=${spec%%:*}; dest=${spec#*:}; [ "$dest" != "$spec" ] || dest=$(realpath "$src")
  [ -e "$src" ] || die "--file $src: no such file"
  if [ "$host_root" = 1 ]; then
    # The VM sees this host's /: it copies the file itself, into its overlay.
    printf '%s\t%s\n' "$(realpath "$src")" "$dest" >> "$root/nested/files"
    continue
  fi
  mkdir -p "$root$(dirname "$dest")"
  cp -a "$src" "$root$dest"
  find "$root$dest" -type f -perm -u+x | while read -r f; do
    head -c4 "$f" | grep -q ELF && copy_libs "$f"
  done || true
done

if [ $# -eq 1 ]; then printf '%s\n' "$1"; else printf '%q ' "$@"; echo; fi > "$root/nested/cmd"
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root NESTED_VM=1
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ctrls=$(sed 's/\([a-z_]*\)/+\1/g' /sys/fs/cgroup/cgroup.controllers)
echo "$ctrls" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
for m in $(cat /nested/mods/order); do insmod /nested/mods/$m.ko || echo "nested-vm: insmod $m failed"; done
[ -e /dev/kvm ] || echo "nested-vm: no /dev/kvm inside the VM (the CPU model lacks SVM?)"
ip link set lo up 2>/dev/null
if [ -f /nested/host-root ]; then
  # --host-root: the host's / (virtio-fs, read-only) under an overlay in RAM.
  . /nested/host-root
  r=/nested/root
  mkdir -p /nested/lower /nested/rw $r
  mount -t virtiofs -o ro hostroot /nested/lower || { echo "nested-vm: mount of the host root failed"; poweroff -f; }
  mount -t tmpfs -o mode=0755 tmpfs /nested/rw && mkdir /nested/rw/upper /nested/rw/work
  mount -t overlay overlay -o lowerdir=/nested/lower,upperdir=/nested/rw/upper,workdir=/nested/rw/work $r ||
    { echo "nested-vm: overlay mount failed"; poweroff -f; }
  mount -t proc proc $r/proc; mount -t sysfs sys $r/sys; mount -t cgroup2 cgroup2 $r/sys/fs/cgroup
  mount -o rbind /dev $r/dev
  mount -t tmpfs -o mode=0755 tmpfs $r/run
  # tmpfs, not the overlay: podman's and containerd's overlay snapshots
  # cannot use an overlayfs as their upper layer.
  mount -t tmpfs -o mode=1777 tmpfs $r/tmp; mount -t tmpfs -o mode=1777 tmpfs $r/var/tmp
  mkdir -p $r/lib/modules/$kver && mount -o bind /nested/lower$kdir/lib/modules/$kver $r/lib/modules/$kver
  # The kernel runs its modprobe helper in this (initramfs) root.
  echo /nested/modprobe > /proc/sys/kernel/modprobe
  # --file: copied from the host's view (its /tmp is not hidden there).
  [ -f /nested/files ] && while IFS="$(printf '\t')" read -r src dest; do
    [ "$src" = "$dest" ] && case "$src" in /tmp/*|/var/tmp/*) ;; *) continue ;; esac # visible as it is
    mkdir -p "$r$(dirname "$dest")" && cp -a "/nested/lower$src" "$r$dest" || echo "nested-vm: copy of $src failed"
  done < /nested/files
  cp /nested/cmd $r/run/nested-vm.cmd
  echo "nested-vm: up after $(cut -d' ' -f1 /proc/uptime) s (host root)"
  # The overlay is moved onto / of a mount namespace of its own (as
  # switch_root does), not merely chrooted into: setns(2) into a container's
  # mount namespace (runc's and vessel's exec) lands on the namespace's
  # topmost root mount, which a chroot would leave to be the initramfs. The
  # initial namespace keeps the initramfs for the modprobe helper.
  unshare -m sh -c 'cd /nested/root && mount --move . / && exec chroot . /usr/bin/env NESTED_VM_HOST_ROOT=1 /bin/sh -c "cd /root && exec /bin/sh /run/nested-vm.cmd"'
  echo "nested-vm-exit-status=$?"
  poweroff -f
fi
echo "nested-vm: up after $(cut -d' ' -f1 /proc/uptime) s"
cd /root
sh /nested/cmd
echo "nested-vm-exit-status=$?"
poweroff -f
EOF
chmod +x "$root/init"
if [ "$host_root" = 1 ]; then
  printf 'kver=%s\nkdir=%s\n' "$kver" "$kdir" > "$root/nested/host-root"
  printf '#!/bin/busybox sh\nexec /bin/busybox chroot /nested/root /sbin/modprobe "$@"\n' > "$root/nested/modprobe"
  chmod +x "$root/nested/modprobe"
  # The host's modprobe needs the index the kernel package ships without.
  if [ ! -s "$kdir/lib/modules/$kver/modules.dep" ]; then
    need depmod kmod
    depmod -b "$kdir" "$kver" || die "depmod -b $kdir $kver failed"
  fi
fi
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$work/initrd.gz")

# --- --host-root: virtiofsd shares / read-only; guest RAM must be shared. --
qemu_fs=() append_extra=''
if [ "$host_root" = 1 ]; then
  # A CPU stuck in the kernel for 60 s (seen once under TCG: the engines
  # spinning from the first minute on) panics with its stack on the console
  # and ends the VM, instead of the run silently using up its timeout.
  append_extra=' softlockup_panic=1 watchdog_thresh=30'
  vfsd=${VESSEL_VIRTIOFSD:-/var/lib/vessel/bin/virtiofsd}
  [ -x "$vfsd" ] || die "missing virtiofsd at $vfsd (run rootfs-tools/virtiofsd.sh)"
  need unshare util-linux
  # It serves a non-recursive bind of / made in a mount namespace of its own:
  # only the root filesystem, whose /proc, /sys, /dev are plain directories
  # the VM mounts on (submounts would be automount points, which overlayfs
  # refuses with EREMOTE), and no host mount is ever made.
  mkdir "$work/hostroot"
  unshare -m --propagation private sh -c 'mount --bind / "$1" && shift && exec "$@"' sh "$work/hostroot" \
    "$vfsd" --socket-path "$work/hostroot.sock" --shared-dir "$work/hostroot" --readonly --cache always \
    --sandbox namespace --log-level error 2> "$work/virtiofsd.log" &
  vfsd_pid=$!
  # (It has usually exited with QEMU already: a failing kill must not end
  # the trap under set -e.)
  trap 'kill "$vfsd_pid" 2>/dev/null || true; wait "$vfsd_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 50); do [ -S "$work/hostroot.sock" ] && break; sleep 0.1; done
  [ -S "$work/hostroot.sock" ] || die "virtiofsd did not start: $(cat "$work/virtiofsd.log")"
  qemu_fs=(-object "memory-backend-memfd,id=mem,size=${mem}M,share=on" -numa node,memdev=mem
           -chardev "socket,id=hostroot,path=$work/hostroot.sock"
           -device vhost-user-fs-pci,chardev=hostroot,tag=hostroot)
fi

# --- Boot it. ----------------------------------------------------------------
# Line-buffered: the console is seen (and kept in console.log) as it comes.
out=$work/console.log
set +e
timeout -k 10 "$timeout_s" qemu-system-x86_64 -M q35 -accel tcg -cpu max -smp "$cpus" -m "$mem" \
  -nographic -serial stdio -monitor none -no-reboot -nodefaults ${qemu_fs[@]+"${qemu_fs[@]}"} \
  -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init$append_extra" </dev/null 2>&1 |
  stdbuf -oL tr -d '\033\r' | tee "$out" | grep --line-buffered -av '^nested-vm-exit-status='
rc=${PIPESTATUS[0]}
set -e
# No status line is a timeout or a crash, told apart below: with pipefail a
# grep that finds nothing must not end the script (it made a timeout exit 1).
status=$({ grep -ao 'nested-vm-exit-status=[0-9]*' "$out" || true; } | tail -1 | cut -d= -f2)
if [ -z "$status" ]; then
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "nested-vm: timed out after $timeout_s s" >&2; exit 124
  fi
  echo "nested-vm: the VM ended without a status (qemu exit $rc)" >&2
  exit 125
fi
exit "$status"
