# vm-tests-fs.sh: VM-mode checks of the rootfs and volumes shared over
# virtio-fs. Sourced by vm-tests.sh (its helpers: v, check, fail, mkbundle,
# nothing_left, state_field); one guest boot plus two creates that never boot.

# fs_left ID: no virtiofsd serving ID, no mount of its state dir, no staging dir.
fs_left() {
  why=''
  for c in /proc/[0-9]*/cmdline; do
    if tr '\0' ' ' < "$c" 2>/dev/null | grep -q "virtiofsd.*$root/$1/"; then why="$why virtiofsd ${c%/cmdline} left;"; fi
  done
  grep -q " $root/$1/" /proc/self/mountinfo && why="$why mount under $root/$1 left;"
  [ -e "$root/$1/share" ] && why="$why staging dir left;"
  echo "$why"
}

# Boot 6: the rootfs is the guest's root, live both ways; volumes rw and ro;
# hostile symlinks; a 500 MiB (sparse) file in the rootfs with 256 MiB of guest RAM.
echo L1-SECRET-$$ > /etc/vessel-fs-secret
mkdir -p "$work/vol-rw" "$work/vol-ro"
echo from-host > "$work/vol-rw/host.txt"
echo ro-content > "$work/vol-ro/host-ro.txt"
rm -f "$work/vol-rw/from-guest.txt" "$work/vol-ro/f"
mkbundle "$work/bfs" ', "vessel.vm.memory_mib": "256"' sh -c 'echo written-in-vm > /root/from-vm.txt; echo "data=$(cat /data/host.txt)"; echo guest-wrote > /data/from-guest.txt; if echo x > /ro/f 2>/dev/null; then echo ro=writable; else echo ro=refused; fi; echo "ro-read=$(cat /ro/host-ro.txt)"; echo "abs=$(cat /abs-link 2>&1)"; echo "up=$(cat /up-link 2>&1)"; echo "dir=$(cat /dir-link/etc/vessel-fs-secret 2>&1)"; [ -e /init ] && echo init=visible || echo init=hidden; [ -e /.vessel ] && echo dotvessel=visible || echo dotvessel=hidden; echo "big=$(tail -c 1048576 /big.img | wc -c)"; echo "hosts=$(head -1 /etc/hosts)"; echo "memkb=$(grep MemTotal /proc/meminfo | tr -s " " | cut -d" " -f2)"; echo "availkb=$(grep MemAvailable /proc/meminfo | tr -s " " | cut -d" " -f2)"; echo "rootfs=$(grep " / " /proc/mounts | cut -d" " -f3 | tr "\n" ,)"'
sed -i 's|"mounts": \[|"mounts": [\n    {"destination": "/data", "type": "bind", "source": "'"$work/vol-rw"'", "options": ["rbind", "rw"]},\n    {"destination": "/ro", "type": "bind", "source": "'"$work/vol-ro"'", "options": ["rbind", "ro"]},|' "$work/bfs/config.json"
ln -s /etc/vessel-fs-secret "$work/bfs/rootfs/abs-link"
ln -s ../../../../../../../../etc/vessel-fs-secret "$work/bfs/rootfs/up-link"
ln -s ../../../../../../../.. "$work/bfs/rootfs/dir-link"
for a in tail sed; do ln -s busybox "$work/bfs/rootfs/bin/$a"; done
truncate -s 500M "$work/bfs/rootfs/big.img"
t0=$(uptime_s)
v run --bundle "$work/bfs" vmfs < /dev/null > "$work/outfs" 2> "$work/errfs"
rc=$?
echo "# boot 6 (virtio-fs rootfs and volumes, 256 MiB guest, 500 MiB file): $(elapsed "$t0") s"
outfs=$(cat "$work/outfs")
echo "# guest memory: $(grep -E '^(memkb|availkb)=' "$work/outfs" | tr '\n' ' ')"
check "virtio-fs: a rootfs with a 500 MiB file boots with 256 MiB of guest RAM" '[ "$rc" = 0 ] && grep -qx big=1048576 "$work/outfs"' "rc $rc, out: $outfs / err: $(cat "$work/errfs")"
check "virtio-fs: the guest's root is the shared rootfs" 'grep -qx "rootfs=virtiofs," "$work/outfs"' "$(grep rootfs= "$work/outfs")"
check "virtio-fs: a file written in the VM lands in the bundle's rootfs" 'grep -qx written-in-vm "$work/bfs/rootfs/root/from-vm.txt"' "$(ls -la "$work/bfs/rootfs/root" 2>&1)"
check "virtio-fs: a host file in a volume is read in the guest" 'grep -qx data=from-host "$work/outfs"' "out: $outfs"
check "virtio-fs: a guest write to a volume lands on the host" 'grep -qx guest-wrote "$work/vol-rw/from-guest.txt"' "$(ls -la "$work/vol-rw" 2>&1)"
check "virtio-fs: a read-only volume refuses writes" 'grep -qx ro=refused "$work/outfs" && [ ! -e "$work/vol-ro/f" ] && grep -qx ro-read=ro-content "$work/outfs"' "out: $outfs"
check "virtio-fs: a file bind (/etc/hosts) is shared" '[ "$(sed -n "s/^hosts=//p" "$work/outfs")" = "$(head -1 /etc/hosts)" ]' "$(grep hosts= "$work/outfs")"
check "virtio-fs: rootfs symlinks to host paths do not read the host's file" '! grep -q L1-SECRET "$work/outfs"' "$(grep -E "^(abs|up|dir)=" "$work/outfs")"
check "virtio-fs: the workload cannot see the initramfs" 'grep -qx init=hidden "$work/outfs" && grep -qx dotvessel=hidden "$work/outfs"' "out: $outfs"
check "virtio-fs: run leaves no virtiofsd, mount or staging dir" '[ -z "$(nothing_left vmfs "")$(fs_left vmfs)" ]' "$(nothing_left vmfs "")$(fs_left vmfs)"
rm -f "$work/bfs/rootfs/big.img" /etc/vessel-fs-secret

# Create only (no boot): virtiofsd serves the VMM until delete; a SIGKILLed
# VMM ends it; a missing volume source is refused at create by name.
mkbundle "$work/bfs2" '' true
if v create --bundle "$work/bfs2" vmfs2 > /dev/null 2> "$work/errfs2"; then
  pidfs2=$(state_field vmfs2 pid)
  check "virtio-fs: create starts virtiofsd in the container's cgroup" '[ -n "$(fs_left vmfs2)" ]' "no virtiofsd for vmfs2"
  kill -9 "$pidfs2"
  i=0; while [ $i -lt 100 ] && fs_left vmfs2 | grep -q virtiofsd; do sleep 0.1; i=$((i + 1)); done
  # The VMM inherits the runtime's connection to virtiofsd, so even a VMM
  # killed before it set its devices up ends virtiofsd (once it waited for
  # a connection until delete).
  check "virtio-fs: a SIGKILL of a created VMM ends its virtiofsd within 10 s" '! fs_left vmfs2 | grep -q virtiofsd' "$(fs_left vmfs2)"
  v delete -f vmfs2
  check "virtio-fs: delete leaves nothing behind" '[ -z "$(nothing_left vmfs2 "$pidfs2")$(fs_left vmfs2)" ]' "$(nothing_left vmfs2 "$pidfs2")$(fs_left vmfs2)"
else
  fail "virtio-fs: create" "$(cat "$work/errfs2")"
fi
sed -i 's|"mounts": \[|"mounts": [\n    {"destination": "/gone", "type": "bind", "source": "/nonexistent/vessel-src", "options": ["rbind"]},|' "$work/bfs2/config.json"
v create --bundle "$work/bfs2" vmfs3 > /dev/null 2> "$work/errfs3"; rc3=$?
check "virtio-fs: a bind with a missing source is refused at create by name" \
  '[ "$rc3" != 0 ] && grep -q "/gone" "$work/errfs3" && grep -q "/nonexistent/vessel-src" "$work/errfs3" && [ -z "$(nothing_left vmfs3 "")$(fs_left vmfs3)" ]' "rc $rc3: $(cat "$work/errfs3")"
# A VMM killed by its seccomp filter leaves an audit line naming the syscall.
dmesg 2>/dev/null | grep -E "type=1326|syscall=" | tail -5 | sed 's/^/# seccomp: /'
