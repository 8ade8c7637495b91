#!/usr/bin/env bash
# vm-clients-tests.sh: Podman and containerd driving vessel-vm. Runs INSIDE
# the nested test VM booted with `nested-vm.sh --host-root` (the host's
# podman, conmon, netavark, containerd, ctr, iptables, curl and script run
# there), with vessel's binaries in $VESSEL_DIR and the guest kernel at
# vessel's default path (or $VESSEL_VM_KERNEL).
#
# Each engine runs the same checks with `vessel` (container mode, the
# reference) and then `vessel-vm` (VM mode): a port-mapped busybox httpd
# reached from this (L1) host, a volume read and written both ways, exec,
# a terminal, pause/resume, update, top, stop of a TERM-trapping workload,
# a rootfs file across stop/start. Containers are batched: every guest
# boot costs ~15 s under TCG.
#
# Env: VESSEL_DIR (default /vessel: vessel, vessel-vmm, vessel-agent),
#      IMAGE_DIR (default /vessel/image: rootfs.tar and busybox-oci.tar from
#      tests/e2e/mkimage.sh), VM_CLIENTS_WORK (default /var/tmp/vm-clients),
#      VM_CLIENTS_ONLY (podman or containerd: run one engine's checks).
# Prints "ok - NAME", "FAIL - NAME: why" or "SKIP - NAME: why" per check;
# exits 1 on any FAIL.
set -u

VESSEL_DIR=${VESSEL_DIR:-/vessel}
IMAGE_DIR=${IMAGE_DIR:-/vessel/image}
work=${VM_CLIENTS_WORK:-/var/tmp/vm-clients}
only=${VM_CLIENTS_ONLY:-}
export VESSEL_VM_KERNEL=${VESSEL_VM_KERNEL:-/var/lib/vessel/kernel/vmlinux}
export VESSEL_INITRAMFS_CACHE=${VESSEL_INITRAMFS_CACHE:-/var/tmp/vessel-initramfs}
# vessel finds vessel-vmm and vessel-agent next to itself; say it anyway.
export VESSEL_VMM=$VESSEL_DIR/vessel-vmm VESSEL_AGENT=$VESSEL_DIR/vessel-agent
IMG=localhost/busybox:e2e
failures=0 skips=0

ok() { echo "ok - $1"; }
fail() { echo "FAIL - $1: $2"; failures=$((failures + 1)); }
skip() { echo "SKIP - $1: $2"; skips=$((skips + 1)); }
check() { if eval "$2"; then ok "$1"; else fail "$1" "$3"; fi; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN{printf "%.1f", b-a}'; }
oneline() { tr '\n' ' ' | cut -c1-"${1:-600}"; }
# wait_for SECONDS CMD...: until CMD succeeds (polls every second).
wait_for() { local n=$1; shift; while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 1; n=$((n - 1)); done; return 1; }
# http URL EXPECT: the body's first line is EXPECT (3 s per try).
http() { [ "$(curl -s --max-time 3 "$1" 2>/dev/null | head -1)" = "$2" ]; }
# typed CMD LINE: CMD under script(1) (a terminal), LINE typed on it once
# the workload has printed its tty's name (input typed before the engine
# attached is lost), stdin kept open after (script ends a session early on
# EOF); prints the session's output, returns CMD's status.
typed() {
  local fifo=$work/.typed-fifo w rc
  rm -f "$fifo" "$work/.typed-out"; mkfifo "$fifo"
  ( for _ in $(seq 120); do grep -q /dev/pts/ "$work/.typed-out" 2>/dev/null && break; sleep 0.5; done
    echo "$2"; exec sleep 120 ) > "$fifo" & w=$!
  timeout -k 5 90 script -qefc "$1" /dev/null < "$fifo" > "$work/.typed-out" 2>&1; rc=$?
  kill "$w" 2>/dev/null; wait "$w" 2>/dev/null; rm -f "$fifo"
  tr -d '\r' < "$work/.typed-out"; return "$rc"
}
# The VMs' guest consoles and vessel's --log files, for a failure's evidence.
consoles() {
  local f
  for f in $(find /run "$work" -name console.log -newer "$work/.start" 2>/dev/null | grep -F "$1"); do
    echo "--- $f"; tail -15 "$f"
  done
}
vessel_logs() { # the last error lines of the --log files engines gave vessel
  local f
  for f in $(find "$work" /run -name 'oci-log' -o -name 'log.json' 2>/dev/null | grep -F "$1"); do
    echo "--- $f"; grep -a '"error"' "$f" | tail -3
  done
}
# in_guest NAME CMD...: CMD prints the workload's /proc/cmdline; in VM mode
# it is the guest kernel's (vessel's agent arguments), else the test VM's.
in_guest() {
  local t=$1 out; shift
  out=$("$@" 2>&1)
  case "$t" in
    */vm) check "$t: exec runs in the guest (its kernel command line has vessel.fs=)" 'echo "$out" | grep -q "vessel.fs="' "got '$out'" ;;
    *) check "$t: exec runs on the test VM's kernel" '! echo "$out" | grep -q "vessel.fs=" && [ "$out" = "$(cat /proc/cmdline)" ]' "got '$out'" ;;
  esac
}
leftovers() { # vessel-vmm or virtiofsd processes still running
  local c
  for c in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' 2>/dev/null < "$c" | grep -qE '^[^ ]*(vessel-vmm|virtiofsd) ' && echo "${c%/cmdline}: $(tr '\0' ' ' 2>/dev/null < "$c" | cut -c1-120)"
  done
}

for f in vessel vessel-vmm vessel-agent; do
  [ -x "$VESSEL_DIR/$f" ] || { echo "FAIL - setup: $VESSEL_DIR/$f missing"; exit 1; }
done
for f in "$VESSEL_VM_KERNEL" "$IMAGE_DIR/rootfs.tar" "$IMAGE_DIR/busybox-oci.tar"; do
  [ -e "$f" ] || { echo "FAIL - setup: $f missing"; exit 1; }
done
for t in podman conmon containerd ctr curl script iptables ip; do
  command -v "$t" >/dev/null || { echo "FAIL - setup: $t missing (run with nested-vm.sh --host-root on a host that has it)"; exit 1; }
done
[ -e /dev/kvm ] || { echo "FAIL - setup: no /dev/kvm"; exit 1; }
ln -sf vessel "$VESSEL_DIR/vessel-vm"
rm -rf "$work"; mkdir -p "$work"; touch "$work/.start"
cd "$work" || exit 1 # conmon drops an oom marker in its cwd

# A heartbeat every 30 s: a hung check shows as heartbeats without results.
( while sleep 30; do echo "# heartbeat: test VM up $(uptime_s) s"; done ) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null' EXIT

# --------------------------------------------------------------------------
# Podman: a private configuration (CLIENTS.md), bridge networking through
# netavark (it touches only this test VM's iptables).
# --------------------------------------------------------------------------
pd=$work/podman
podman_setup() {
  mkdir -p "$pd"/{graph,run,tmp,net,vol,imgtmp}
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/graph"\nrunroot = "%s/run"\n' "$pd" "$pd" > "$pd/storage.conf"
  local nofile nproc
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  cat > "$pd/containers.conf" <<EOF
[containers]
netns = "bridge"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[network]
network_backend = "netavark"
network_config_dir = "$pd/net"
[engine]
runtime = "$VESSEL_DIR/vessel"
runtime_supports_json = ["crun", "runc", "vessel", "vessel-vm"]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$pd/events.log"
tmp_dir = "$pd/tmp"
volume_path = "$pd/vol"
image_copy_tmp_dir = "$pd/imgtmp"
lock_type = "file"
EOF
  export CONTAINERS_CONF=$pd/containers.conf CONTAINERS_STORAGE_CONF=$pd/storage.conf
  podman import --change 'CMD ["/bin/sh"]' "$IMAGE_DIR/rootfs.tar" "$IMG" > /dev/null 2> "$pd/import.err"
}
# P RUNTIME ARGS...: podman with that runtime, bounded.
P() { local rt=$1; shift; timeout -k 10 "${PODMAN_TIMEOUT:-120}" podman --runtime "$rt" "$@"; }
pstate() { P "$1" inspect -f "{{.State.$3}}" "$2" 2>/dev/null; }

# The workload: httpd in the background, a TERM trap that records itself in
# the volume and exits 3, and a loop (busybox sh runs the trap between sleeps).
WEB_CMD='mkdir -p /www && echo "hello from $MODE" > /www/index.html && httpd -f -p 80 -h /www & trap "echo trapped >> /data/trap.txt; exit 3" TERM; while :; do sleep 1; done'

# podman_checks MODE RUNTIME PORT: one container through its whole life.
podman_checks() {
  local mode=$1 rt=$2 port=$3 id=pweb-$1 t=podman/$1 vol=$work/pvol-$1 out rc t0
  mkdir -p "$vol"; echo from-host > "$vol/host.txt"
  t0=$(uptime_s)
  out=$(P "$rt" run -d --name "$id" -e MODE="$mode" -p "$port:80" -v "$vol:/data" "$IMG" sh -c "$WEB_CMD" 2>&1); rc=$?
  if [ $rc != 0 ]; then
    fail "$t: run -d -p $port:80 -v $vol:/data" "exit $rc: $(echo "$out" | oneline) $(vessel_logs "$id" | oneline) $(consoles "" | oneline 1500)"
    P "$rt" rm -f "$id" > /dev/null 2>&1; return
  fi
  local cid=$out
  wait_for 90 http "http://127.0.0.1:$port/" "hello from $mode"
  echo "# $t: httpd answered $(elapsed "$t0") s after run; console log: $(consoles "$cid" | head -1)"
  check "$t: run -d -p $port:80 busybox httpd answers curl on 127.0.0.1:$port from the L1 host" \
    'http "http://127.0.0.1:$port/" "hello from $mode"' \
    "got '$(curl -s --max-time 3 "http://127.0.0.1:$port/" 2>&1 | head -2)'; logs: $(P "$rt" logs "$id" 2>&1 | oneline); $(consoles "$cid" | oneline 1500)"
  local ip; ip=$(P "$rt" inspect -f '{{.NetworkSettings.IPAddress}}' "$id" 2>/dev/null)
  check "$t: the container's own address $ip:80 answers from the L1 host" 'http "http://$ip:80/" "hello from $mode"' "got '$(curl -s --max-time 3 "http://$ip:80/" 2>&1 | head -2)'"

  # Volumes, both ways and live.
  out=$(P "$rt" exec "$id" cat /data/host.txt 2>&1)
  check "$t: -v: the workload reads a host file in the volume" '[ "$out" = from-host ]' "got '$out'"
  P "$rt" exec "$id" sh -c 'echo from-guest > /data/guest.txt' > /dev/null 2>&1
  check "$t: -v: a write in the container lands in the host directory" 'grep -qx from-guest "$vol/guest.txt"' "$(ls -la "$vol" | oneline)"
  echo later > "$vol/later.txt"
  out=$(P "$rt" exec "$id" cat /data/later.txt 2>&1)
  check "$t: -v: a host write made while it runs is seen inside" '[ "$out" = later ]' "got '$out'"

  # exec: where it runs, output, status, a terminal.
  in_guest "$t" P "$rt" exec "$id" cat /proc/cmdline
  out=$(P "$rt" exec "$id" sh -c 'echo out; echo err >&2; exit 5' 2>&1); rc=$?
  check "$t: exec: stdout, stderr and exit status 5" '[ $rc = 5 ] && echo "$out" | grep -qx out && echo "$out" | grep -qx err' "rc $rc, out '$(echo "$out" | oneline)'"
  out=$(typed "podman --runtime $rt exec -it $id sh -c 'tty; read l; echo got=\$l; exit 6'" typed-line); rc=$?
  check "$t: exec -it (under script): a /dev/pts terminal, typed input arrives, exit status 6" \
    '[ $rc = 6 ] && echo "$out" | grep -q "^/dev/pts/" && echo "$out" | grep -q "got=typed-line"' "rc $rc, out '$(echo "$out" | oneline)'"

  # The rootfs: a file written now must survive stop/start.
  P "$rt" exec "$id" sh -c 'echo kept > /root/kept.txt' > /dev/null 2>&1

  # top: podman reads the processes itself (psgo) or runs ps in the container.
  out=$(P "$rt" top "$id" 2>&1); rc=$?
  if [ "$mode" = vm ]; then
    # Podman's psgo reads /proc itself in the mount namespace of the
    # container's pid, which in VM mode is the VMM in its jail, whose only
    # procfs is that of the VMM's own pid namespace: the host's view of a
    # VM container, one process. The guest's processes are in `top` with
    # ps options (ps run in the guest, below) and `vessel ps`.
    check "$t: top without ps options lists the VMM, the container's one host process, and no other host process" \
      '[ $rc = 0 ] && echo "$out" | grep -q "vessel-vmm" && [ "$(echo "$out" | wc -l)" = 2 ] && ! echo "$out" | grep -qE "kthreadd|conmon|podman "' "rc $rc: $(echo "$out" | oneline)"
  else
    check "$t: top lists the workload's processes (httpd) and only the container's" \
      '[ $rc = 0 ] && echo "$out" | grep -q httpd && ! echo "$out" | grep -qE "kthreadd|conmon|podman"' "rc $rc: $(echo "$out" | oneline)"
  fi
  out=$(P "$rt" top "$id" -eo pid,comm 2>&1); rc=$?
  check "$t: top with ps(1) options (ps run in the container)" '[ $rc = 0 ] && echo "$out" | grep -q httpd' "rc $rc: $(echo "$out" | oneline)"

  # pause/unpause: no answer while paused, answers after.
  out=$(P "$rt" pause "$id" 2>&1); rc=$?
  local st; st=$(pstate "$rt" "$id" Status)
  check "$t: pause: status paused and httpd does not answer" '[ $rc = 0 ] && [ "$st" = paused ] && ! http "http://127.0.0.1:$port/" "hello from $mode"' \
    "rc $rc, status '$st': $(echo "$out" | oneline) $(vessel_logs "$cid" | oneline)"
  out=$(P "$rt" unpause "$id" 2>&1); rc=$?
  st=$(pstate "$rt" "$id" Status)
  check "$t: unpause: status running and httpd answers again" '[ $rc = 0 ] && [ "$st" = running ] && wait_for 10 http "http://127.0.0.1:$port/" "hello from $mode"' \
    "rc $rc, status '$st': $(echo "$out" | oneline) $(vessel_logs "$cid" | oneline)"

  # update --cpus: the quota lands in the container's cgroup (the VMM's in VM mode).
  out=$(P "$rt" update --cpus 0.5 "$id" 2>&1); rc=$?
  local pid cg max; pid=$(pstate "$rt" "$id" Pid); cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null)
  max=$(cat "/sys/fs/cgroup$cg/cpu.max" 2>&1)
  check "$t: update --cpus 0.5 sets cpu.max 50000 100000" '[ $rc = 0 ] && [ "$max" = "50000 100000" ]' \
    "rc $rc: $(echo "$out" | oneline); cgroup $cg cpu.max '$max' $(vessel_logs "$cid" | oneline)"
  P "$rt" exec "$id" true > /dev/null 2>&1
  check "$t: the container still runs after update" '[ $? = 0 ] && http "http://127.0.0.1:$port/" "hello from $mode"' "exec or httpd failed after update"

  # stop: TERM reaches the workload, its trap runs, its exit status is kept.
  out=$(P "$rt" stop -t 30 "$id" 2>&1); rc=$?
  local code; code=$(pstate "$rt" "$id" ExitCode)
  eval "stop_code_$mode=\$code"
  check "$t: stop: the TERM trap ran and the exit status is 3" '[ $rc = 0 ] && [ "$code" = 3 ] && grep -qx trapped "$vol/trap.txt"' \
    "rc $rc, exit code '$code', trap file: $(cat "$vol/trap.txt" 2>&1) $(echo "$out" | oneline) $(consoles "$cid" | oneline 1500)"

  # start again: the rootfs file is still there, the port answers again.
  t0=$(uptime_s)
  out=$(P "$rt" start "$id" 2>&1); rc=$?
  wait_for 90 http "http://127.0.0.1:$port/" "hello from $mode"
  echo "# $t: httpd answered $(elapsed "$t0") s after start"
  local kept; kept=$(P "$rt" exec "$id" cat /root/kept.txt 2>&1)
  check "$t: a rootfs file written before stop is there after start" '[ $rc = 0 ] && [ "$kept" = kept ]' \
    "rc $rc: $(echo "$out" | oneline); got '$kept' $(vessel_logs "$cid" | oneline)"
  check "$t: after start the mapped port answers again" 'http "http://127.0.0.1:$port/" "hello from $mode"' \
    "logs: $(P "$rt" logs "$id" 2>&1 | tail -3 | oneline) $(consoles "$cid" | oneline 1500)"
  out=$(P "$rt" rm -f -t 5 "$id" 2>&1); rc=$?
  check "$t: rm -f removes it" '[ $rc = 0 ] && ! P "$rt" container exists "$id"' "rc $rc: $(echo "$out" | oneline)"

  # run -it: a terminal for the workload, its exit status back (-t alone
  # attaches no stdin).
  out=$(typed "podman --runtime $rt run --rm -it --network none $IMG sh -c 'tty; read l; echo got=\$l; exit 7'" typed); rc=$?
  check "$t: run -it (under script): a /dev/pts terminal, typed input arrives, exit status 7" \
    '[ $rc = 7 ] && echo "$out" | grep -q "^/dev/pts/" && echo "$out" | grep -q got=typed' "rc $rc, out '$(echo "$out" | oneline)'"
}

# refusal ENGINE-NAME CMD...: CMD asks VM mode for a host device; vessel-vm
# refuses it at create, and the engine (which reads vessel's --log JSON)
# shows vessel's message naming the field.
refusal() {
  local t=$1 out rc; shift
  out=$("$@" 2>&1); rc=$?
  echo "# $t: $(echo "$out" | grep -m1 linux.devices | cut -c1-400)"
  check "$t: a host device is refused at create and the engine shows vessel's message (linux.devices)" \
    '[ $rc != 0 ] && echo "$out" | grep -q "linux.devices /dev/fuse"' "rc $rc: $(echo "$out" | oneline)"
}

if [ "$only" != containerd ]; then
  if podman_setup; then
    ok "podman: private containers.conf/storage.conf, image imported"
    refusal podman/vm P "$VESSEL_DIR/vessel-vm" run --rm --name prefused --device /dev/fuse "$IMG" true
    P "$VESSEL_DIR/vessel-vm" rm -f prefused > /dev/null 2>&1
    podman_checks container "$VESSEL_DIR/vessel" 8080
    podman_checks vm "$VESSEL_DIR/vessel-vm" 8081
    check "podman: the exit status of a stopped TERM-trapping workload is the same in both modes" \
      '[ "${stop_code_vm:-x}" = "${stop_code_container:-y}" ]' "container ${stop_code_container:-?}, vm ${stop_code_vm:-?}"
    out=$(leftovers)
    check "podman: no vessel-vmm or virtiofsd left after rm" '[ -z "$out" ]' "$out"
  else
    fail "podman: setup" "$(cat "$pd/import.err")"
  fi
  podman rm -af -t 0 > /dev/null 2>&1
fi

# --------------------------------------------------------------------------
# containerd: a private instance (CLIENTS.md), the image imported from an
# OCI layout, a network namespace made here as CNI would (a veth pair).
# --------------------------------------------------------------------------
cdir=$work/containerd sock=$work/containerd/c.sock
containerd_setup() {
  mkdir -p "$cdir"
  cat > "$cdir/config.toml" <<EOF2
version = 2
root = "$cdir/root"
state = "$cdir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$cdir/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$cdir/opt"
EOF2
  containerd --config "$cdir/config.toml" > "$cdir/containerd.log" 2>&1 &
  containerd_pid=$!
  wait_for 60 ctr -a "$sock" version > /dev/null 2>&1 || { echo "containerd did not come up: $(tail -3 "$cdir/containerd.log")"; return 1; }
  C images import "$IMAGE_DIR/busybox-oci.tar" > "$cdir/import.out" 2>&1 || { cat "$cdir/import.out"; return 1; }
}
C() { timeout -k 10 "${CTR_TIMEOUT:-120}" ctr -a "$sock" -n vct "$@"; }
task_status() { C task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }

# containerd_checks MODE RUNTIME SUBNET: one task through its life, in a
# namespace whose eth0 is 10.SUBNET.0.2/24 (the L1 side 10.SUBNET.0.1).
containerd_checks() {
  local mode=$1 rt=$2 net=$3 id=cweb-$1 t=containerd/$1 vol=$work/cvol-$1 ns=vct-$1 out rc t0
  local addr=10.$net.0.2 url=http://10.$net.0.2:80/
  mkdir -p "$vol" "$work/ctr-runc" "$work/ctr-fifo"; echo from-host > "$vol/host.txt"
  ip netns add "$ns" && ip link add "vh-$mode" type veth peer name eth0 netns "$ns" &&
    ip addr add "10.$net.0.1/24" dev "vh-$mode" && ip link set "vh-$mode" up &&
    ip -n "$ns" link set lo up && ip -n "$ns" link set eth0 up && ip -n "$ns" addr add "$addr/24" dev eth0 &&
    ip -n "$ns" route add default via "10.$net.0.1" || { fail "$t: network namespace setup" "ip failed"; return; }
  t0=$(uptime_s)
  out=$(C run -d --runc-binary "$rt" --runc-root "$work/ctr-runc" --fifo-dir "$work/ctr-fifo" \
    --with-ns "network:/run/netns/$ns" --mount "type=bind,src=$vol,dst=/data,options=rbind:rw" \
    --env MODE="$mode" "$IMG" "$id" sh -c "$WEB_CMD" 2>&1); rc=$?
  if [ $rc != 0 ]; then
    fail "$t: run -d --runc-binary $rt --with-ns network:/run/netns/$ns --mount ...:/data" \
      "exit $rc: $(echo "$out" | oneline) $(vessel_logs "$id" | oneline) $(consoles "$id" | oneline 1500)"
  else
    wait_for 90 http "$url" "hello from $mode"
    echo "# $t: httpd answered $(elapsed "$t0") s after run"
    check "$t: busybox httpd in the task answers curl on $addr:80 from the L1 host" 'http "$url" "hello from $mode"' \
      "got '$(curl -s --max-time 3 "$url" 2>&1 | head -2)'; status $(task_status "$id"); $(consoles "$id" | oneline 1500)"

    out=$(C task exec --exec-id r1 "$id" cat /data/host.txt 2>&1)
    check "$t: --mount: the workload reads a host file in the volume" '[ "$out" = from-host ]' "got '$out'"
    C task exec --exec-id w1 "$id" sh -c 'echo from-guest > /data/guest.txt' > /dev/null 2>&1
    check "$t: --mount: a write in the task lands in the host directory" 'grep -qx from-guest "$vol/guest.txt"' "$(ls -la "$vol" | oneline)"
    echo later > "$vol/later.txt"
    out=$(C task exec --exec-id r2 "$id" cat /data/later.txt 2>&1)
    check "$t: --mount: a host write made while it runs is seen inside" '[ "$out" = later ]' "got '$out'"

    in_guest "$t" C task exec --exec-id k1 "$id" cat /proc/cmdline
    out=$(C task exec --exec-id e1 "$id" sh -c 'echo out; exit 5' 2>&1); rc=$?
    check "$t: task exec: output and exit status 5" '[ $rc = 5 ] && [ "$out" = out ]' "rc $rc, out '$(echo "$out" | oneline)'"
    out=$(typed "ctr -a $sock -n vct task exec --tty --exec-id t1 $id sh -c 'tty; read l; echo got=\$l; exit 6'" typed-line); rc=$?
    check "$t: task exec --tty (under script): a /dev/pts terminal, typed input arrives, exit status 6" \
      '[ $rc = 6 ] && echo "$out" | grep -q "^/dev/pts/" && echo "$out" | grep -q got=typed-line' "rc $rc, out '$(echo "$out" | oneline)'"

    out=$(C task pause "$id" 2>&1); rc=$?
    local st; st=$(task_status "$id")
    check "$t: task pause: PAUSED and httpd does not answer" '[ $rc = 0 ] && [ "$st" = PAUSED ] && ! http "$url" "hello from $mode"' \
      "rc $rc, status '$st': $(echo "$out" | oneline) $(vessel_logs "$id" | oneline)"
    out=$(C task resume "$id" 2>&1); rc=$?
    st=$(task_status "$id")
    check "$t: task resume: RUNNING and httpd answers again" '[ $rc = 0 ] && [ "$st" = RUNNING ] && wait_for 10 http "$url" "hello from $mode"' \
      "rc $rc, status '$st': $(echo "$out" | oneline) $(vessel_logs "$id" | oneline)"

    C task kill -s SIGTERM "$id" > /dev/null 2>&1
    wait_for 30 sh -c "[ \"\$(ctr -a $sock -n vct task ls | awk '\$1 == \"$id\" {print \$3}')\" = STOPPED ]"
    # ctr 1.6's task delete reports a non-zero status as a warning.
    out=$(C task delete "$id" 2>&1); rc=$?
    local code; code=$(echo "$out" | sed -n 's/.*exit with non-zero exit code \([0-9]*\).*/\1/p')
    [ $rc = 0 ] && [ -z "$code" ] && code=0
    eval "ctr_code_$mode=\$code"
    check "$t: task kill -s SIGTERM: the trap ran and the exit status is 3" '[ "$code" = 3 ] && grep -qx trapped "$vol/trap.txt"' \
      "task delete rc $rc: $(echo "$out" | oneline); trap file: $(cat "$vol/trap.txt" 2>&1)"
  fi
  C task delete -f "$id" > /dev/null 2>&1; C container delete "$id" > /dev/null 2>&1
  check "$t: after delete the namespace's eth0 has its address back" 'ip -n "$ns" -4 addr show eth0 | grep -q "$addr/24"' \
    "$(ip -n "$ns" addr show eth0 2>&1 | oneline)"
  ip netns del "$ns" 2>/dev/null; ip link del "vh-$mode" 2>/dev/null
}

if [ "$only" != podman ]; then
  if containerd_setup > "$work/containerd-setup.out" 2>&1; then
    ok "containerd: private config, OCI layout image imported"
    mkdir -p "$work/ctr-runc" "$work/ctr-fifo"
    refusal containerd/vm C run --rm --runc-binary "$VESSEL_DIR/vessel-vm" --runc-root "$work/ctr-runc" \
      --fifo-dir "$work/ctr-fifo" --device /dev/fuse "$IMG" crefused true
    C container delete crefused > /dev/null 2>&1
    containerd_checks container "$VESSEL_DIR/vessel" 201
    containerd_checks vm "$VESSEL_DIR/vessel-vm" 202
    check "containerd: the exit status of a TERM-trapping task is the same in both modes" \
      '[ "${ctr_code_vm:-x}" = "${ctr_code_container:-y}" ]' "container ${ctr_code_container:-?}, vm ${ctr_code_vm:-?}"
    out=$(leftovers)
    check "containerd: no vessel-vmm or virtiofsd left after delete" '[ -z "$out" ]' "$out"
  else
    fail "containerd: setup" "$(oneline < "$work/containerd-setup.out")"
  fi
  [ -n "${containerd_pid:-}" ] && { kill "$containerd_pid"; wait "$containerd_pid"; } 2>/dev/null
fi

if [ "$failures" -gt 0 ]; then
  echo "vm-clients-tests: $failures check(s) failed, $skips skipped"
  exit 1
fi
echo "vm-clients-tests: all checks passed ($skips skipped)"
