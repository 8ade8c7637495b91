#!/bin/sh
# vm-tests.sh: vessel's VM-mode checks. Runs INSIDE a VM with real KVM
# (rootfs-tools/nested-vm.sh) with the vessel binary, vessel-agent and the
# guest kernel copied in. Every guest boot costs ~15 s under the emulated
# CPU, so the checks share three boots.
#
# Env: VESSEL, VESSEL_AGENT, VESSEL_VIRTIOFSD (default /vessel/{vessel,vessel-agent,virtiofsd}),
#      CONSOLE_RECEIVER (default /vessel/console-receiver; examples/console-receiver.rs),
#      VESSEL_VM_KERNEL (default /var/lib/vessel/kernel/vmlinux), BUSYBOX (default /bin/busybox).
# Prints one line per check, "ok - NAME" or "FAIL - NAME: why"; exits 1 on any failure.
# POSIX sh: it runs under busybox in the nested VM.
set -u

VESSEL=${VESSEL:-/vessel/vessel}
export VESSEL_AGENT=${VESSEL_AGENT:-/vessel/vessel-agent}
export VESSEL_VIRTIOFSD=${VESSEL_VIRTIOFSD:-/vessel/virtiofsd}
export VESSEL_VM_KERNEL=${VESSEL_VM_KERNEL:-/var/lib/vessel/kernel/vmlinux}
export VESSEL_INITRAMFS_CACHE=${VESSEL_INITRAMFS_CACHE:-/var/tmp/vessel-initramfs}
BUSYBOX=${BUSYBOX:-/bin/busybox}
# examples/console-receiver.rs: takes the pty master over --console-socket.
RECEIVER=${CONSOLE_RECEIVER:-/vessel/console-receiver}
work=${VM_TESTS_WORK:-/var/tmp/vm-tests}
root=$work/state
failures=0

ok() { echo "ok - $1"; }
fail() { echo "FAIL - $1: $2"; failures=$((failures + 1)); }
check() { # check NAME CONDITION-AS-STRING WHY
  if eval "$2"; then ok "$1"; else fail "$1" "$3"; fi
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN{printf "%.1f", b-a}'; }
# Every command has a deadline, so a hang is a failed check, not a stuck CI job.
# -k: a command that ignores TERM is killed 10 s later.
v() { timeout -k 10 "${VM_TESTS_CMD_TIMEOUT:-120}" "$VESSEL" --root "$root" "$@"; }
state_field() { # state_field ID FIELD: a top-level string or number field of `vessel state`
  v state "$1" 2>/dev/null | tr -d '\n' | sed -n "s/.*\"$2\"[ ]*:[ ]*\"\{0,1\}\([^\",}]*\).*/\1/p"
}
wait_status() { # wait_status ID STATUS SECONDS
  i=0
  while [ $i -lt $(($3 * 10)) ]; do
    [ "$(state_field "$1" status)" = "$2" ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
json_args() { # the arguments as a JSON array of strings
  printf '['; sep=''
  for a in "$@"; do
    printf '%s"%s"' "$sep" "$(printf '%s' "$a" | sed 's/\\/\\\\/g; s/"/\\"/g')"; sep=','
  done
  printf ']'
}

# Capability numbers, CAP_CHOWN (0) to CAP_CHECKPOINT_RESTORE (40).
CAP_NAMES="CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
  SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
  SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
  MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
  CHECKPOINT_RESTORE"
cap_mask() { # the capability names on stdin (one a line) as /proc/<pid>/status prints a set
  m=0
  while read -r c || [ -n "$c" ]; do
    i=0
    for n in $CAP_NAMES; do
      [ "CAP_$n" = "$c" ] && m=$((m | (1 << i)))
      i=$((i + 1))
    done
  done
  printf '%016x' "$m"
}
spec_caps() { # spec_caps CONFIG SET: the names in process.capabilities.SET, one a line
  tr -d ' \n' < "$1" | sed -n 's/.*"capabilities":{\([^}]*\)}.*/\1/p' \
    | sed -n "s/.*\"$2\":\[\([^]]*\)\].*/\1/p" | tr ',' '\n' | tr -d '"'
}
status_line() { # status_line FILE FIELD: FIELD's value in /proc/self/status lines saved in FILE
  sed -n "s/^$2:[[:space:]]*//p" "$1" | head -1
}
# The process rules checks' profile: mkdir fails with EXDEV (18).
MKDIR_EXDEV='{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]}'

# mkbundle DIR ANNOTATIONS-JSON-MEMBERS ARGS...: a busybox bundle in VM mode.
mkbundle() {
  dir=$1 ann=$2; shift 2
  rm -rf "$dir"; mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/rootfs/proc" \
    "$dir/rootfs/sys" "$dir/rootfs/dev" "$dir/rootfs/root"
  cp "$BUSYBOX" "$dir/rootfs/bin/busybox"
  for a in sh echo cat grep sleep nproc read head tr wc ls true false id tty stty mkdir; do
    ln -s busybox "$dir/rootfs/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
  cat > "$dir/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": $(json_args "$@"),
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "VM_TEST=1"],
    "cwd": "/root"
  },
  "root": {"path": "rootfs", "readonly": false},
  "hostname": "vm-test",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
    {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "annotations": {"vessel.sandbox": "vm"$ann},
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]
  }
}
EOF
}

# nothing_left ID PID: no VMM process, no state dir, no cgroup for ID.
nothing_left() {
  why=''
  if [ -n "$2" ] && [ -d "/proc/$2" ] && ! grep -q '^State:.*Z' "/proc/$2/status" 2>/dev/null; then
    why="$why vmm pid $2 alive;"
  fi
  [ -e "$root/$1" ] && why="$why state dir $root/$1 left;"
  cg=$(find /sys/fs/cgroup -type d -name "*$1*" 2>/dev/null | head -1)
  [ -n "$cg" ] && why="$why cgroup $cg left;"
  echo "$why"
}

# Stress mode (below) needs no console receiver.
[ "${1:-}" = --stress ] && RECEIVER=$BUSYBOX
for f in "$VESSEL" "$VESSEL_AGENT" "$VESSEL_VM_KERNEL" "$BUSYBOX" "$RECEIVER"; do
  [ -e "$f" ] || { echo "FAIL - setup: $f missing"; exit 1; }
done
[ -e /dev/kvm ] || { echo "FAIL - setup: no /dev/kvm (run me inside rootfs-tools/nested-vm.sh)"; exit 1; }
# Bundles bind /etc/hosts (shared over virtio-fs): the test VM has none of its own.
[ -e /etc/hosts ] || printf '127.0.0.1 localhost vm-tests\n' > /etc/hosts
rm -rf "$work"; mkdir -p "$work" "$root"
# A heartbeat every 30 s: when the run outlives the harness's bound, its
# output tells a hung check (heartbeats go on) from a test VM that stopped
# running anything (they stop): tests/vm.rs boots again only for the latter.
# Each also names the threads in uninterruptible sleep (D) with their kernel
# wait channel: a hang then shows whether something sits in the kernel.
d_threads() {
  for f in /proc/[0-9]*/task/[0-9]*/stat; do
    read -r line < "$f" 2> /dev/null || continue
    rest=${line##*) }
    [ "${rest%% *}" = D ] || continue
    comm=${line#*(}; task=${f%/stat}
    printf ' %s/%s@%s' "${comm%%)*}" "${task##*/}" "$(cat "$task/wchan" 2> /dev/null)"
  done
}
( while sleep 30; do echo "# heartbeat: test VM up $(uptime_s) s; D:$(d_threads)"; done ) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null' EXIT

# --- Stress mode: vm-tests.sh --stress N (bench/vm-stress.sh runs it) ---------
# N VM-mode lifecycles with a CPU hog beside them, three kinds in turn: a run
# to exit (stdout and status 0 checked), a run ended by kill TERM 0-4 s after
# it was created (143: before the agent is up or after), and create, start,
# kill KILL, delete. Each has a 90 s bound (then KILL); a run past it is a
# hang. Every run must leave nothing behind. Prints one line per failure, then
# the counts and the medians, p90 and maxima per kind; exits 1 on a failure.
stress_fail() { # stress_fail I KIND WHY: report, keep the console tail, clean up
  echo "FAIL - stress run $1 ($2): $3"
  [ -f "$root/st$1/console.log" ] && tail -15 "$root/st$1/console.log" | sed 's/^/    console: /'
  v kill "st$1" KILL 2>/dev/null; v delete -f "st$1" 2>/dev/null
  failures=$((failures + 1))
}
stress_stats() { # stress_stats KIND: "median p90 max" of its durations
  sort -n "$work/times-$1" | awk '{t[NR]=$1} END {if (NR) printf "median %.1f s, p90 %.1f s, max %.1f s (%d runs)", t[int((NR+1)/2)], t[int(NR*0.9+0.99)], t[NR], NR}'
}
count_hang() { # count_hang STATUS: timeout's 124 (TERM) or 137 (KILL) is a run past its bound
  if [ "$1" = 124 ] || [ "$1" = 137 ]; then hangs=$((hangs + 1)); fi
}
step() { # step CMD ARG...: a vessel command of a lifecycle; on failure, why= says which and how
  v "$@" 2> "$work/se"; src=$?
  [ "$src" = 0 ] && return 0
  why="$1 exit $src: $(cat "$work/se")"
  count_hang "$src"
  return 1
}
stress() {
  n=$1 hangs=0
  mkbundle "$work/s0" '' echo stress-ok
  # A TERM trap: the workload is PID 1 of its pid namespace (a TERM in the
  # moment between its exec and the trap is lost, as in container mode).
  mkbundle "$work/s1" '' sh -c 'trap "exit 143" TERM; sleep 60 & wait'
  mkbundle "$work/s2" '' sleep 60
  ( while :; do :; done ) & hog=$!
  : > "$work/times-exit"; : > "$work/times-term"; : > "$work/times-kill"
  # Not i: wait_status uses that name.
  run=1
  while [ "$run" -le "$n" ]; do
    t0=$(uptime_s) id=st$run
    case $((run % 3)) in
      1) kind=exit
         timeout -k 5 90 "$VESSEL" --root "$root" run --bundle "$work/s0" "$id" > "$work/so" 2> "$work/se"; rc=$?
         if [ "$rc" != 0 ] || [ "$(cat "$work/so")" != stress-ok ]; then
           count_hang "$rc"
           stress_fail "$run" $kind "exit $rc, stdout '$(cat "$work/so")', stderr $(cat "$work/se")"
         fi ;;
      2) kind=term
         timeout -k 5 90 "$VESSEL" --root "$root" run --bundle "$work/s1" "$id" > "$work/so" 2> "$work/se" & runpid=$!
         j=0; while [ $j -lt 600 ] && [ -z "$(state_field "$id" status)" ]; do sleep 0.1; j=$((j + 1)); done
         sleep $((run % 5))
         v kill "$id" TERM 2>> "$work/se"
         wait "$runpid"; rc=$?
         if [ "$rc" != 143 ]; then
           count_hang "$rc"
           stress_fail "$run" $kind "exit $rc, not 143; stderr $(cat "$work/se")"
         fi ;;
      0) kind=kill
         why=''
         if ! { step create --bundle "$work/s2" "$id" && step start "$id" && step kill "$id" KILL \
                && { wait_status "$id" stopped 60 || { why="not stopped 60 s after kill KILL: $(v state "$id" 2>&1)"; false; }; } \
                && step delete "$id"; }; then
           stress_fail "$run" $kind "$why"
         fi ;;
    esac
    elapsed "$t0" >> "$work/times-$kind"; echo >> "$work/times-$kind"
    left=$(nothing_left "$id" "")
    [ -n "$left" ] && stress_fail "$run" "$kind, after it" "left behind:$left"
    [ $((run % 25)) = 0 ] && echo "# stress: $run of $n runs, $failures failure(s)"
    run=$((run + 1))
  done
  kill "$hog"
  echo "# stress: run to exit: $(stress_stats exit)"
  echo "# stress: run + kill TERM: $(stress_stats term)"
  echo "# stress: create/start/kill KILL/delete: $(stress_stats kill)"
  echo "vm-stress: $n runs under load, $failures failure(s), $hangs past their bound"
  [ "$failures" = 0 ]
}
if [ "${1:-}" = --stress ]; then
  stress "${2:-200}"; exit $?
fi
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)
host_cmdline=$(cat /proc/cmdline)

# --- Boot 1: output, exit status 3, stdin, sizing, a separate kernel. --------
mkbundle "$work/b1" ', "vessel.vm.vcpus": "2", "vessel.vm.memory_mib": "192"' \
  sh -c 'echo hello-from-vm; echo "bootid=$(cat /proc/sys/kernel/random/boot_id)"; echo "cmdline=$(cat /proc/cmdline)"; echo "nproc=$(nproc)"; echo "memkb=$(grep MemTotal /proc/meminfo | tr -s " " | cut -d" " -f2)"; echo "hostname=$(cat /proc/sys/kernel/hostname)"; echo "init_argv=$(tr "\\0" " " < /proc/1/cmdline | cut -c1-12)"; echo "procs=$(ls -d /proc/[0-9]* | wc -l)"; echo "modules_disabled=$(cat /proc/sys/kernel/modules_disabled)"; echo "modules=$(cut -d" " -f1 /proc/modules | sort | tr "\\n" " ")"; echo "model=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2)"; echo "xsave_warnings=$(dmesg | grep -c "XSAVE consistency")"; echo "xsave_flag=$(grep -m1 -ow xsave /proc/cpuinfo)"; echo "xsave_log=$(dmesg | grep -i "fpu\|xsave\|xstate" | tr "\\n" "|")"; echo "rules=$(grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status | tr -d " \t\n")"; read line; echo "stdin=$line"; echo to-stderr >&2; exit 3'
# The workload's only capability: CAP_SYSLOG, for dmesg.
sed -i 's|"process": {|"process": {"capabilities": {"bounding": ["CAP_SYSLOG"], "effective": ["CAP_SYSLOG"], "permitted": ["CAP_SYSLOG"]},|' "$work/b1/config.json"
t0=$(uptime_s)
echo ping-through-stdin | v run --bundle "$work/b1" vm1 > "$work/out1" 2> "$work/err1"
rc=$?
echo "# boot 1 (vessel run to exit): $(elapsed "$t0") s"
out=$(cat "$work/out1")
check "run prints the workload's stdout" 'grep -qx hello-from-vm "$work/out1"' "stdout: $out / stderr: $(cat "$work/err1")"
check "exit status 3 comes back from vessel run" '[ "$rc" = 3 ]' "got $rc"
check "workload stderr reaches stderr" 'grep -qx to-stderr "$work/err1"' "stderr: $(cat "$work/err1")"
check "stdin reaches the workload" 'grep -qx stdin=ping-through-stdin "$work/out1"' "stdout: $out"
check "vcpus annotation gives 2 CPUs in the guest" 'grep -qx nproc=2 "$work/out1"' "$(grep nproc= "$work/out1")"
memkb=$(sed -n 's/^memkb=//p' "$work/out1")
check "memory annotation sizes guest RAM (192 MiB)" '[ -n "$memkb" ] && [ "$memkb" -gt 120000 ] && [ "$memkb" -le 196608 ]' "MemTotal ${memkb:-?} kB"
guest_boot_id=$(sed -n 's/^bootid=//p' "$work/out1")
check "guest boot_id differs from the host's" '[ -n "$guest_boot_id" ] && [ "$guest_boot_id" != "$host_boot_id" ]' "guest ${guest_boot_id:-?} host $host_boot_id"
guest_cmdline=$(sed -n 's/^cmdline=//p' "$work/out1")
check "guest /proc/cmdline is vessel's, not the host's" \
  'case "$guest_cmdline" in *rdinit=/init*) [ "$guest_cmdline" != "$host_cmdline" ] ;; *) false ;; esac' "guest: $guest_cmdline"
# A bare word of the command line the kernel does not know goes to init's
# argv (once "nomodules" did): none but the kernel's own flags.
bare=$(echo "$guest_cmdline" | tr ' ' '\n' | grep -v '[=.]' | grep -vx 'quiet\|no_timer_check\|' | tr '\n' ' ')
check "the guest command line has no bare word the kernel would pass to the agent" '[ -z "$bare" ]' "bare words: '$bare' in $guest_cmdline"
# The workload is PID 1 of its own pid namespace, as in container mode: it
# sees neither the agent nor the guest's ~50 kernel threads.
init_argv=$(sed -n 's/^init_argv=//p' "$work/out1")
procs=$(sed -n 's/^procs=//p' "$work/out1")
check "the workload is PID 1 of its own pid namespace (not the agent)" '[ "$init_argv" = "sh -c echo h" ]' "/proc/1/cmdline starts '$init_argv'"
check "the workload sees only its own processes (no agent, no kernel threads)" '[ -n "$procs" ] && [ "$procs" -lt 8 ]' "$procs pids in its /proc"
# The agent loads the kernel's modules (guest-kernel.sh's load-order beside
# it) before anything else, then turns module loading off.
guest_modules=$(sed -n 's/^modules=//p' "$work/out1")
want_modules=$(sed 's/\.ko$//; s/-/_/g' "$VESSEL_VM_KERNEL.modules/load-order" 2>/dev/null | tr '\n' ' ')
all_listed() { # all_listed WORDS LIST: every word of WORDS is in the space-separated LIST
  for w in $1; do case " $2" in *" $w "*) ;; *) return 1 ;; esac; done
}
check "the agent loaded the kernel's modules (virtio_mmio, virtio_console, ...)" \
  'all_listed "virtio_mmio virtio_console $want_modules" "$guest_modules"' \
  "guest /proc/modules: '$guest_modules'; load-order: '$want_modules'"
check "module loading is off in the guest after that" 'grep -qx modules_disabled=1 "$work/out1"' "$(grep modules_disabled= "$work/out1")"
model=$(sed -n 's/^model=//p' "$work/out1")
check "the guest CPU has a brand string" '[ -n "$model" ] && case "$model" in *Hammer*) false ;; *) true ;; esac' "model name: '$model'"
check "no XSAVE consistency warning in the guest kernel log" 'grep -qx xsave_warnings=0 "$work/out1"' "$(grep xsave_log= "$work/out1")"
check "the guest kernel keeps XSAVE on" 'grep -qx xsave_flag=xsave "$work/out1"' "$(grep xsave_flag= "$work/out1")"
check "no profile, no noNewPrivileges: Seccomp 0, NoNewPrivs 0; CapEff is the spec's CAP_SYSLOG" \
  'grep -qx "rules=CapEff:$(echo CAP_SYSLOG | cap_mask)NoNewPrivs:0Seccomp:0" "$work/out1"' "$(grep rules= "$work/out1")"
check "spec hostname is set in the guest" 'grep -qx hostname=vm-test "$work/out1"' "$(grep hostname= "$work/out1")"
check "run leaves nothing behind" '[ -z "$(nothing_left vm1 "")" ]' "$(nothing_left vm1 "")"

# --- Boot 2: vessel run in the background; a TERM sent while paused waits
# for resume (as for a frozen container), then ends it: 128+15. ------------
# The workload is PID 1 of its pid namespace, which (as in container mode)
# ignores a TERM it has no handler for: it traps TERM.
mkbundle "$work/b2" '' sh -c 'trap "echo got-term; exit 143" TERM; echo "started $(grep -E "^(CapEff|CapPrm|NoNewPrivs|Seccomp):" /proc/self/status | tr -d " \t\n")"; sleep 1000 & wait'
# A profile without noNewPrivileges and without CAP_SYS_ADMIN: the agent keeps
# CAP_SYS_ADMIN to load the filter, then drops it (as container mode's init).
sed -i 's|"process": {|"process": {"capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},|' "$work/b2/config.json"
sed -i "s|\"linux\": {|\"linux\": {\"seccomp\": $MKDIR_EXDEV,|" "$work/b2/config.json"
t0=$(uptime_s)
v run --bundle "$work/b2" vm2 > "$work/out2" 2> "$work/err2" &
runpid=$!
if wait_status vm2 running 60; then
  i=0; while [ $i -lt 600 ] && ! grep -q started "$work/out2"; do sleep 0.1; i=$((i + 1)); done
  echo "# boot 2 (vessel run to workload output): $(elapsed "$t0") s"
  kill_mask=$(echo CAP_KILL | cap_mask)
  check "a profile without noNewPrivileges: Seccomp 2, NoNewPrivs 0, CAP_SYS_ADMIN dropped after the filter" \
    'grep -qx "started CapPrm:${kill_mask}CapEff:${kill_mask}NoNewPrivs:0Seccomp:2" "$work/out2"' "$(cat "$work/out2")"
  pid2=$(state_field vm2 pid)
  v pause vm2 2>> "$work/err2"
  v kill vm2 TERM
  sleep 1
  check "a TERM sent while paused waits: still paused" '[ "$(state_field vm2 status)" = paused ] && kill -0 $runpid 2>/dev/null' "$(v state vm2 2>&1)"
  v resume vm2 2>> "$work/err2"
  wait $runpid; rc=$?
  check "kill TERM (sent while paused) reaches the workload's trap after resume; vessel run ends with 143" '[ "$rc" = 143 ] && grep -qx got-term "$work/out2"' "got $rc; stdout: $(cat "$work/out2"); stderr: $(cat "$work/err2")"
  v delete -f vm2 >/dev/null 2>&1
  check "run + kill TERM leaves nothing behind" '[ -z "$(nothing_left vm2 "$pid2")" ]' "$(nothing_left vm2 "$pid2")"
else
  fail "kill TERM ends vessel run with 143" "vm2 never reached running: $(cat "$work/err2")"
  kill -9 $runpid 2>/dev/null; v delete -f vm2 >/dev/null 2>&1
fi

# --- Boot 3: create / start; pause and resume a counter; update; the VMM's
# jail; kill KILL while paused; delete. -----------------------------------------
# A 256 MiB memory limit (guest RAM 256 MiB) and 100 MiB of it touched in
# the guest's /tmp, for the memory measurement and the update checks.
mkbundle "$work/b3" '' sh -c 'head -c 100m /dev/zero > /tmp/fill; echo up; i=0; while :; do i=$((i + 1)); echo "tick $i"; sleep 0.2; done'
# /proc/sys read-only, as the default spec has it (the escape probe).
sed -i 's/"namespaces": \[/"resources": {"memory": {"limit": 268435456}, "pids": {"limit": 100}, "cpu": {"shares": 512, "quota": 80000, "period": 100000}}, "readonlyPaths": ["\/proc\/sys"], "namespaces": [/' "$work/b3/config.json"
cgdir() { echo "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$1/cgroup")"; }
ticks() { grep -c '^tick ' "$work/out3"; }
wait_ticks() { # wait_ticks MORE-THAN SECONDS
  i=0; while [ $i -lt $(($2 * 10)) ]; do [ "$(ticks)" -gt "$1" ] && return 0; sleep 0.1; i=$((i + 1)); done
  return 1
}
if v create --bundle "$work/b3" vm3 > "$work/out3" 2> "$work/err3"; then
  check "state after create is created" '[ "$(state_field vm3 status)" = created ]' "$(v state vm3 2>&1)"
  pid3=$(state_field vm3 pid)
  check "create records the VMM pid" '[ -n "$pid3" ] && [ -d "/proc/$pid3" ]' "pid ${pid3:-?}"
  check "the VMM is in the container's cgroup" '[ -n "$pid3" ] && grep -q vm3 "/proc/$pid3/cgroup"' "$(cat "/proc/$pid3/cgroup" 2>/dev/null)"
  v pause vm3 > /dev/null 2> "$work/err3p"; rc=$?
  check "pause of a created (not started) VM is refused" '[ "$rc" != 0 ] && grep -q "not been started" "$work/err3p" && [ "$(state_field vm3 status)" = created ]' "rc $rc: $(cat "$work/err3p")"
  t0=$(uptime_s)
  v start vm3 2>> "$work/err3"
  check "state after start is running" '[ "$(state_field vm3 status)" = running ]' "$(v state vm3 2>&1)"
  if wait_ticks 2 60; then
    echo "# boot 3 (start to first ticks): $(elapsed "$t0") s"
    cg3=$(cgdir "$pid3")
    check "create raises the cgroup's memory limit to guest RAM + VMM overhead (256+32+2 MiB)" \
      '[ "$(cat "$cg3/memory.max")" = 304087040 ]' "memory.max $(cat "$cg3/memory.max" 2>&1)"
    echo "# measured: cgroup memory.current $(($(cat "$cg3/memory.current") >> 20)) MiB, peak $(($(cat "$cg3/memory.peak" 2>/dev/null || echo 0) >> 20)) MiB;" \
      "VMM $(grep -E '^(VmRSS|RssAnon|RssFile|VmPTE)' "/proc/$pid3/status" | tr -s ' \t\n' ' ');" \
      "virtiofsd $(for p in $(cat "$cg3/cgroup.procs"); do [ "$p" = "$pid3" ] || grep -E '^(VmRSS|RssAnon|VmHWM)' "/proc/$p/status"; done | tr -s ' \t\n' ' ');" \
      "memory.stat $(grep -E '^(anon|file|kernel|kernel_stack|pagetables|sec_pagetables|percpu|slab) ' "$cg3/memory.stat" | awk '{printf "%s=%dK ", $1, $2/1024}')"
    ids=$(sed -n 's/^\(Uid\|Gid\):[[:space:]]*//p' "/proc/$pid3/status" | tr -s ' \t\n' ' ')
    check "the running VMM has dropped to uid/gid 65534" '[ "$ids" = "65534 65534 65534 65534 65534 65534 65534 65534 " ]' "Uid/Gid: $ids"
    check "the running VMM has no capabilities" 'grep -q "^CapEff:[[:space:]]*0*$" "/proc/$pid3/status" && grep -q "^CapBnd:[[:space:]]*0*$" "/proc/$pid3/status"' "$(grep ^Cap "/proc/$pid3/status" | tr '\n' ' ')"
    for ns in ipc uts mnt pid; do
      check "the VMM has its own $ns namespace" '[ "$(readlink "/proc/$pid3/ns/$ns")" != "$(readlink "/proc/self/ns/$ns")" ]' "VMM $(readlink "/proc/$pid3/ns/$ns"), host $(readlink "/proc/self/ns/$ns")"
    done
    jail=$(ls -A "/proc/$pid3/root" 2>&1 | tr '\n' ' '); jailprocs=$(ls "/proc/$pid3/root/proc" 2>&1 | grep -c '^[0-9]')
    check "the VMM's root holds only a procfs of its own pid namespace, listing the VMM alone" \
      '[ "$jail" = "proc " ] && [ "$jailprocs" = 1 ]' "root: $jail; pids in its /proc: $jailprocs"
    . "$(dirname "$0")/vm-tests-exec.sh"
    v update --cpu-quota 50000 --cpu-period 100000 vm3 2> "$work/err3u"; rc=$?
    got=$(v exec vm3 cat /sys/fs/cgroup/cpu.max 2>&1)
    check "update --cpu-quota lands in the VMM's cgroup and in the workload's cgroup in the guest" \
      '[ "$rc" = 0 ] && [ "$(cat "$cg3/cpu.max")" = "50000 100000" ] && [ "$got" = "50000 100000" ]' "rc $rc: $(cat "$work/err3u"); cpu.max $(cat "$cg3/cpu.max"), in the guest $got"
    v update --memory 48M vm3 2> "$work/err3u"; rc=$?
    check "update --memory 48M of a VM is refused, naming guest RAM" \
      '[ "$rc" != 0 ] && grep -q "guest RAM, fixed at boot" "$work/err3u" && grep -q "nothing was changed" "$work/err3u"' "rc $rc: $(cat "$work/err3u")"
    n0=$(ticks)
    check "after the refused update the VM still runs, its limit unchanged" \
      '[ "$(state_field vm3 status)" = running ] && wait_ticks "$n0" 20 && [ "$(cat "$cg3/memory.max")" = 304087040 ]' "$(v state vm3 2>&1); memory.max $(cat "$cg3/memory.max")"
    v update --memory 512M vm3 2> "$work/err3u"; rc=$?
    got=$(v exec vm3 cat /sys/fs/cgroup/memory.max 2>&1)
    check "update --memory at or above guest RAM + overhead is applied, on the host and in the guest" \
      '[ "$rc" = 0 ] && [ "$(cat "$cg3/memory.max")" = 536870912 ] && [ "$got" = 536870912 ]' "rc $rc: $(cat "$work/err3u"); memory.max $(cat "$cg3/memory.max"), in the guest $got"
    check "no OOM kill in the VM's cgroup" '[ "$(sed -n "s/^oom_kill //p" "$cg3/memory.events")" = 0 ]' "$(cat "$cg3/memory.events")"
    t1=$(uptime_s)
    v pause vm3 2> "$work/err3p"; rc=$?
    echo "# vessel pause took $(elapsed "$t1") s"
    check "pause of a running VM succeeds" '[ "$rc" = 0 ]' "rc $rc: $(cat "$work/err3p")"
    check "state after pause is paused" '[ "$(state_field vm3 status)" = paused ]' "$(v state vm3 2>&1)"
    n1=$(ticks); sleep 2; n2=$(ticks)
    check "the counter stops while paused" '[ "$n1" = "$n2" ]' "ticks $n1 then $n2 two seconds later"
    v resume vm3 2> "$work/err3p"; rc=$?
    check "resume succeeds and state is running again" '[ "$rc" = 0 ] && [ "$(state_field vm3 status)" = running ]' "rc $rc: $(cat "$work/err3p"); $(v state vm3 2>&1)"
    check "the counter advances after resume" 'wait_ticks "$n2" 20' "still $(ticks) ticks"
    v pause vm3 2> "$work/err3p"
    check "paused again" '[ "$(state_field vm3 status)" = paused ]' "$(cat "$work/err3p"); $(v state vm3 2>&1)"
    v kill vm3 KILL
    check "kill KILL of a paused VM stops it" 'wait_status vm3 stopped 20' "$(v state vm3 2>&1)"
  else
    fail "the VM's counter starts" "no ticks: $(cat "$work/out3") / $(cat "$work/err3")"
    v kill vm3 KILL
    wait_status vm3 stopped 20
  fi
  v delete vm3
  check "create/start/kill/delete leaves nothing behind" '[ -z "$(nothing_left vm3 "$pid3")" ]' "$(nothing_left vm3 "$pid3")"
else
  fail "create of a VM-mode bundle" "$(cat "$work/err3")"
fi

# --- No boot: create, kill before start, delete. --------------------------------
if v create --bundle "$work/b3" vm4 > /dev/null 2> "$work/err4"; then
  pid4=$(state_field vm4 pid)
  v kill vm4 KILL
  wait_status vm4 stopped 20
  v delete vm4
  check "create, kill before start, delete leaves nothing behind" '[ -z "$(nothing_left vm4 "$pid4")" ]' "$(nothing_left vm4 "$pid4")"
else
  fail "create, kill before start, delete" "create failed: $(cat "$work/err4")"
fi

# --- Boots 4 and 5: a guest whose agent never comes up (the operator's
# VESSEL_AGENT names busybox, which runs as the guest's init and never speaks
# on the channel; a config cannot replace the agent: rdinit= is refused). A
# TERM then ends the VM at once; the boot timeout ends a run with an error
# naming the bound; both leave nothing behind. -----------------------------------
mkbundle "$work/b6" '' true
# term_before_agent ID: run the agentless guest, TERM it 2 s after it runs.
# Prints "EXIT VMM-PID TERM-TIME" (or "never-running"); stderr in $work/err-ID.
term_before_agent() {
  env VESSEL_AGENT="$BUSYBOX" timeout -k 10 "${VM_TESTS_CMD_TIMEOUT:-120}" "$VESSEL" --root "$root" \
    run --bundle "$work/b6" "$1" > "$work/out-$1" 2> "$work/err-$1" &
  runpid=$!
  if ! wait_status "$1" running 30; then
    kill "$runpid" 2>/dev/null; echo never-running; return
  fi
  pid6=$(state_field "$1" pid)
  sleep 2
  t6=$(uptime_s)
  v kill "$1" TERM
  wait "$runpid"; echo "$? $pid6 $t6"
}
set -- $(term_before_agent vm6); id6=vm6
if grep -q "without an exit status" "$work/err-vm6"; then
  # The agentless guest crashed on its own before the TERM (seen once under
  # heavy load): that says nothing about the TERM path; boot it once more.
  echo "# RETRY: the agentless guest crashed by itself: $(cat "$work/err-vm6")"
  set -- $(term_before_agent vm6b); id6=vm6b
fi
rc=$1 pid6=${2:-} t6=${3:-0}
took=$(elapsed "$t6")
if [ "$rc" != never-running ]; then
  check "TERM before the agent is up ends vessel run with 143" '[ "$rc" = 143 ]' "exit $rc; stderr: $(cat "$work/err-$id6")"
  check "TERM before the agent is up ends the VM within 10 s" 'awk -v t="$took" "BEGIN{exit !(t < 10)}"' "took $took s"
  check "TERM before the agent is up: the VMM says why" 'grep -q "before the guest.s agent was up" "$work/err-$id6"' "stderr: $(cat "$work/err-$id6")"
  check "TERM before the agent is up leaves nothing behind" '[ -z "$(nothing_left "$id6" "$pid6")" ]' "$(nothing_left "$id6" "$pid6")"
else
  fail "run of a guest without an agent" "never running; stderr: $(cat "$work/err-$id6")"
fi
t7=$(uptime_s)
VESSEL_AGENT=$BUSYBOX VESSEL_VM_BOOT_TIMEOUT=8 timeout 120 "$VESSEL" --root "$root" run --bundle "$work/b6" vm7 \
  > "$work/out7" 2> "$work/err7"
rc=$?
took=$(elapsed "$t7")
check "boot timeout: run fails" '[ "$rc" != 0 ] && [ "$rc" != 124 ]' "exit $rc"
check "boot timeout: the error names the bound" 'grep -q "was not up 8 s after start" "$work/err7"' "stderr: $(cat "$work/err7")"
check "boot timeout: ends within 60 s" 'awk -v t="$took" "BEGIN{exit !(t < 60)}"' "took $took s"
check "boot timeout: nothing left behind" '[ -z "$(nothing_left vm7 "")" ]' "$(nothing_left vm7 "")"

# --- Boot 6: the process rules (`vessel spec`'s capabilities, noNewPrivileges,
# a seccomp profile), in the guest and, for comparison, in container mode. ----
mkdir -p "$work/spec6" && (cd "$work/spec6" && "$VESSEL" spec) \
  || fail "vessel spec" "cannot write the default config.json"
caps6=$(tr -d ' \n' < "$work/spec6/config.json" | sed -n 's/.*"capabilities":\({[^}]*}\).*/\1/p')
# vessel spec's masked and read-only paths too: /proc/kcore is among the
# first, /proc/sys among the second.
masked6=$(tr -d ' \n' < "$work/spec6/config.json" | sed -n 's/.*"maskedPaths":\(\[[^]]*\]\).*/\1/p')
readonly6=$(tr -d ' \n' < "$work/spec6/config.json" | sed -n 's/.*"readonlyPaths":\(\[[^]]*\]\).*/\1/p')
mkbundle "$work/b6" '' sh -c 'grep -E "^(Cap[A-Za-z]*|NoNewPrivs|Seccomp):" /proc/self/status; mkdir /tmp/denied 2>&1; echo "mkdir_rc=$?"; echo "kcore_bytes=$(wc -c < /proc/kcore)"; echo "kcore_mounts=$(grep -c " /proc/kcore " /proc/self/mounts)"; echo "proc_sys_ro=$(grep -c " /proc/sys proc ro," /proc/self/mounts)"'
sed -i "s|\"process\": {|\"process\": {\"capabilities\": $caps6, \"noNewPrivileges\": true,|" "$work/b6/config.json"
sed -i "s|\"linux\": {|\"linux\": {\"seccomp\": $MKDIR_EXDEV, \"maskedPaths\": $masked6, \"readonlyPaths\": $readonly6,|" "$work/b6/config.json"
rm -rf "$work/b6c" && cp -a "$work/b6" "$work/b6c"
# Container mode on the test VM: no /etc/hosts there to bind.
sed -i 's/"vessel.sandbox": "vm"/"vessel.sandbox": "container"/; /"\/etc\/hosts"/d' "$work/b6c/config.json"
t0=$(uptime_s)
v run --bundle "$work/b6" vm6 > "$work/out6" 2> "$work/err6"; rc=$?
echo "# boot 6 (process rules, vessel run to exit): $(elapsed "$t0") s"
v run --bundle "$work/b6c" ct6 > "$work/out6c" 2> "$work/err6c"; rc_c=$?
check "process rules: the VM run exits 0, as the container run" '[ "$rc" = 0 ] && [ "$rc_c" = 0 ]' \
  "vm $rc: $(cat "$work/err6"); container $rc_c: $(cat "$work/err6c")"
for set in bounding:CapBnd effective:CapEff permitted:CapPrm; do
  want=$(spec_caps "$work/spec6/config.json" "${set%%:*}" | cap_mask)
  got=$(status_line "$work/out6" "${set#*:}")
  got_c=$(status_line "$work/out6c" "${set#*:}")
  check "process rules: ${set#*:} in the guest is vessel spec's ${set%%:*} set, as in container mode" \
    '[ "$want" != 0000000000000000 ] && [ "$got" = "$want" ] && [ "$got_c" = "$want" ]' \
    "spec $want, guest '$got', container '$got_c'"
done
for f in CapInh CapAmb; do
  check "process rules: $f in the guest as in container mode" \
    '[ "$(status_line "$work/out6" $f)" = "$(status_line "$work/out6c" $f)" ]' \
    "guest '$(status_line "$work/out6" $f)', container '$(status_line "$work/out6c" $f)'"
done
check "process rules: NoNewPrivs 1 in the guest (noNewPrivileges)" '[ "$(status_line "$work/out6" NoNewPrivs)" = 1 ]' "$(cat "$work/out6")"
check "process rules: Seccomp 2 in the guest (a profile)" '[ "$(status_line "$work/out6" Seccomp)" = 2 ]' "$(cat "$work/out6")"
mkdir_vm=$(grep "^mkdir" "$work/out6" | tr '\n' ' ')
mkdir_ct=$(grep "^mkdir" "$work/out6c" | tr '\n' ' ')
check "process rules: the profile's mkdir errno (EXDEV) in the guest, as in container mode" \
  'grep -qi "cross-device link" "$work/out6" && grep -qx mkdir_rc=1 "$work/out6" && [ "$mkdir_vm" = "$mkdir_ct" ]' \
  "guest: $mkdir_vm; container: $mkdir_ct"
check "vessel spec has masked and read-only paths for the next checks" \
  'echo "$masked6" | grep -q /proc/kcore && echo "$readonly6" | grep -q /proc/sys' "masked '$masked6' read-only '$readonly6'"
for f in kcore_bytes kcore_mounts proc_sys_ro; do
  want=$(grep "^$f=" "$work/out6c")
  check "masked/read-only paths: $f in the guest as in container mode ($want)" \
    '[ -n "$want" ] && [ "$(grep "^$f=" "$work/out6")" = "$want" ]' "guest: $(grep "^$f=" "$work/out6"); container: $want"
done
check "masked paths: /proc/kcore reads as empty in the guest (masked by /dev/null)" \
  'grep -qx kcore_bytes=0 "$work/out6" && grep -qx kcore_mounts=1 "$work/out6"' "$(grep kcore "$work/out6")"
check "read-only paths: /proc/sys is a read-only mount in the guest" 'grep -qx proc_sys_ro=1 "$work/out6"' "$(grep proc_sys "$work/out6")"
check "process rules: nothing left behind" '[ -z "$(nothing_left vm6 "")$(nothing_left ct6 "")" ]' "$(nothing_left vm6 "")$(nothing_left ct6 "")"

# --- Boot 7: bulk stdout over the agent channel (`seq`, about 6.9 MB), intact. ---
# Everything here runs under QEMU's emulated CPU, 2 levels deep: 64 MiB would
# take minutes. VM_TESTS_BULK_N=8000000 gives about 63 MB.
bulk_n=${VM_TESTS_BULK_N:-1000000}
mkbundle "$work/b7" '' sh -c "busybox seq 1 $bulk_n"
want_sum=$("$BUSYBOX" seq 1 "$bulk_n" | "$BUSYBOX" sha256sum | cut -d' ' -f1)
t0=$(uptime_s)
v run --bundle "$work/b7" vm7 2> "$work/err7" | tee "$work/out7" | "$BUSYBOX" sha256sum | cut -d' ' -f1 > "$work/sum7"
bulk_s=$(elapsed "$t0")
bulk_bytes=$(wc -c < "$work/out7")
rm -f "$work/out7"
echo "# boot 7 (bulk stdout, vessel run to exit): $bulk_s s, $bulk_bytes bytes, $(awk -v b="$bulk_bytes" -v s="$bulk_s" 'BEGIN{if (s > 0) printf "%.1f", b / 1048576 / s}') MiB/s including the boot"
check "bulk stdout: $bulk_bytes bytes arrive intact (sha256 of seq 1 $bulk_n)" '[ "$(cat "$work/sum7")" = "$want_sum" ]' "got $(cat "$work/sum7"), want $want_sum; stderr: $(tail -3 "$work/err7")"
check "bulk stdout: nothing left behind" '[ -z "$(nothing_left vm7 "")" ]' "$(nothing_left vm7 "")"

# --- No boot: a seccomp profile with SCMP_ACT_NOTIFY is refused in VM mode. -----
# A live listener socket (the console receiver's; it gets no connection), so
# the check common to both modes, that listenerPath is a socket, passes.
"$RECEIVER" "$work/listener8.sock" "$work/recv8" 1 1 x 2> /dev/null & listener8=$!
i=0; while [ $i -lt 50 ] && [ ! -S "$work/listener8.sock" ]; do sleep 0.1; i=$((i + 1)); done
mkbundle "$work/b8" '' true
sed -i "s|\"linux\": {|\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"$work/listener8.sock\", \"syscalls\": [{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_NOTIFY\"}]},|" "$work/b8/config.json"
v create --bundle "$work/b8" vm8 > /dev/null 2> "$work/err8"; rc=$?
kill "$listener8" 2>/dev/null; wait "$listener8" 2>/dev/null
check "SCMP_ACT_NOTIFY in VM mode: create fails naming it" '[ "$rc" != 0 ] && grep -q SCMP_ACT_NOTIFY "$work/err8"' "rc $rc: $(cat "$work/err8")"
check "SCMP_ACT_NOTIFY in VM mode: nothing left behind" '[ -z "$(nothing_left vm8 "")" ]' "$(nothing_left vm8 "")"

# --- No boot: a missing kernel is refused at create with its own message. -------
kdir=$(dirname "$VESSEL_VM_KERNEL")
mkbundle "$work/b5" ", \"vessel.vm.kernel\": \"$kdir/nonexistent-vmlinux\"" true
v create --bundle "$work/b5" vm5 > /dev/null 2> "$work/err5"
rc=$?
check "missing kernel: create fails" '[ "$rc" != 0 ]' "create succeeded"
check "missing kernel: the error names the path and guest-kernel.sh" \
  'grep -q "$kdir/nonexistent-vmlinux" "$work/err5" && grep -q guest-kernel.sh "$work/err5"' "stderr: $(cat "$work/err5")"
check "missing kernel: nothing left behind" '[ -z "$(nothing_left vm5 "")" ]' "$(nothing_left vm5 "")"
# A bundle may name a kernel only in the operator's directories: not a host
# ELF it would read in the guest, not through a symlink or "..".
ln -sf /bin/busybox "$kdir/escape-link"
for bad in /bin/busybox "$kdir/../../../../bin/busybox" "$kdir/escape-link"; do
  mkbundle "$work/b5" ", \"vessel.vm.kernel\": \"$bad\"" true
  v create --bundle "$work/b5" vm5 > /dev/null 2> "$work/err5"; rc=$?
  check "a bundle's kernel outside the operator's directories ($bad) is refused, naming VESSEL_VM_KERNEL_DIRS, leaving nothing" \
    '[ "$rc" != 0 ] && grep -q "outside the directories" "$work/err5" && grep -q VESSEL_VM_KERNEL_DIRS "$work/err5" && [ -z "$(nothing_left vm5 "")" ]' "rc $rc: $(cat "$work/err5")"
done
rm -f "$kdir/escape-link"

# --- process.terminal. -----------------------------------------------------------
# tty_bundle DIR ARGS...: mkbundle with process.terminal and a 21x77 consoleSize.
tty_bundle() {
  tdir=$1; shift
  mkbundle "$tdir" '' "$@"
  sed -i 's/"terminal": false/"terminal": true, "consoleSize": {"height": 21, "width": 77}/' "$tdir/config.json"
}
vmm_procs() { # VMM processes still alive (not zombies)
  n=0
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = vessel-vmm ] && ! grep -q '^State:.*Z' "$p/status" 2>/dev/null && n=$((n + 1))
  done
  echo $n
}
cr=$(printf '\r')

# No boot: create with a terminal and no --console-socket fails as in
# container mode (runc's message) and leaves nothing, not even a VMM.
tty_bundle "$work/b8" sh -c 'tty'
v create --bundle "$work/b8" vm8 > /dev/null 2> "$work/err8"; rc=$?
check "terminal without --console-socket: create fails naming --console-socket" \
  '[ "$rc" != 0 ] && grep -q "use --console-socket" "$work/err8"' "rc $rc: $(cat "$work/err8")"
check "terminal without --console-socket: nothing left behind" \
  '[ -z "$(nothing_left vm8 "")" ] && [ "$(vmm_procs)" = 0 ]' "$(nothing_left vm8 "") vmm processes: $(vmm_procs)"

# Boot 4: foreground run under script(1): vessel relays the pty itself.
tty_bundle "$work/b6" sh -c 'tty; [ -t 0 ] && echo stdin-is-tty; [ -t 1 ] && echo stdout-is-tty; [ /dev/console -ef "$(tty)" ] && echo console-is-tty; echo done; read line; echo "got:$line"; exit 7'
rm -f "$work/hold6"; mkfifo "$work/hold6"
# A line typed in, and script's stdin kept open (at EOF it may end the
# session early).
{ printf 'typed-in\n'; sleep 300; } > "$work/hold6" & holdpid=$!
t0=$(uptime_s)
script -qec "timeout 120 $VESSEL --root $root run --bundle $work/b6 vm6" /dev/null < "$work/hold6" > "$work/out6" 2> "$work/err6"
rc=$?
kill $holdpid 2>/dev/null; wait $holdpid 2>/dev/null
echo "# boot 4 (terminal run under script to exit): $(elapsed "$t0") s"
out6=$(tr -d '\r' < "$work/out6")
check "terminal run: the workload's tty is a /dev/pts path" 'printf "%s\n" "$out6" | grep -q "^/dev/pts/[0-9]"' "out: $out6 / err: $(cat "$work/err6")"
check "terminal run: stdin and stdout are a terminal" 'printf "%s\n" "$out6" | grep -qx stdin-is-tty && printf "%s\n" "$out6" | grep -qx stdout-is-tty' "out: $out6"
check "terminal run: /dev/console is the workload's pty, as container mode makes it" 'printf "%s\n" "$out6" | grep -qx console-is-tty' "out: $out6"
check "terminal run: the exit status (7) comes back through script" '[ "$rc" = 7 ]' "got $rc; out: $out6 / err: $(cat "$work/err6")"
check "terminal run: a line typed on the caller's terminal reaches the workload" 'printf "%s\n" "$out6" | grep -qx got:typed-in' "out: $out6"
check "terminal run: no CR added to the workload's output (ONLCR cleared, as container mode's relay)" '! grep -q "done$cr" "$work/out6"' "$(od -c "$work/out6" | head -5)"
check "terminal run leaves nothing behind" '[ -z "$(nothing_left vm6 "")" ] && [ "$(vmm_procs)" = 0 ]' "$(nothing_left vm6 "") vmm processes: $(vmm_procs)"

# Boot 6: a run without a terminal from an interactive terminal leaves the
# caller's terminal alone (the VMM takes a terminal only when told).
mkbundle "$work/b9" '' echo plain-run
rm -f "$work/hold9"; mkfifo "$work/hold9"
sleep 300 > "$work/hold9" & holdpid=$!
script -qec "timeout 120 $VESSEL --root $root run --bundle $work/b9 vm9; echo rc=\$?; stty -a" /dev/null < "$work/hold9" > "$work/out9" 2>&1
kill $holdpid 2>/dev/null; wait $holdpid 2>/dev/null
out9=$(tr -d '\r' < "$work/out9")
check "run without a terminal under a terminal: output and status" 'printf "%s\n" "$out9" | grep -qx plain-run && printf "%s\n" "$out9" | grep -qx rc=0' "out: $out9"
check "run without a terminal under a terminal: the caller's terminal keeps icanon and echo" \
  'printf "%s\n" "$out9" | tr " ;" "\n\n" | grep -qx icanon && printf "%s\n" "$out9" | tr " ;" "\n\n" | grep -qx echo' "out: $out9"

# Boot 5: create --console-socket, start; the receiver gets the master,
# reads the output, resizes the master once the workload says ready and
# types a line.
tty_bundle "$work/b7" sh -c 'tty; [ -t 0 ] && echo stdin-is-tty; echo "size0=$(stty size)"; echo ready; i=0; while [ "$(stty size)" != "37 111" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; echo "size=$(stty size)"; read line; echo "got:$line"; exit 5'
sock=$work/console.sock
rm -f "$sock"
"$RECEIVER" "$sock" "$work/out7" 37 111 ping 2> "$work/recv7" & recvpid=$!
i=0; while [ $i -lt 100 ] && [ ! -S "$sock" ]; do sleep 0.1; i=$((i + 1)); done
t0=$(uptime_s)
if v create --bundle "$work/b7" --console-socket "$sock" vm7 > /dev/null 2> "$work/err7"; then
  pid7=$(state_field vm7 pid)
  v start vm7 2>> "$work/err7"
  i=0; while [ $i -lt 1200 ] && kill -0 $recvpid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
  echo "# boot 5 (terminal start to exit, console socket): $(elapsed "$t0") s"
  kill $recvpid 2>/dev/null; wait $recvpid; rrc=$?
  out7=$(tr -d '\r' < "$work/out7")
  check "console socket: the master arrives named /dev/ptmx" 'printf "%s\n" "$out7" | grep -qx name=/dev/ptmx' "receiver rc $rrc: $(cat "$work/recv7"); out: $out7 / create: $(cat "$work/err7")"
  check "console socket: output read from the master has the tty path" 'printf "%s\n" "$out7" | grep -q "^/dev/pts/[0-9]" && printf "%s\n" "$out7" | grep -qx stdin-is-tty' "out: $out7"
  check "console socket: process.consoleSize is the guest terminal's size" 'printf "%s\n" "$out7" | grep -qx "size0=21 77"' "out: $out7"
  check "console socket: TIOCSWINSZ on the master reaches stty size in the guest" 'printf "%s\n" "$out7" | grep -qx "size=37 111"' "out: $out7"
  check "console socket: input written to the master reaches the workload" 'printf "%s\n" "$out7" | grep -qx "got:ping"' "out: $out7"
  check "console socket: the VM stops when the workload exits" 'wait_status vm7 stopped 20' "$(v state vm7 2>&1)"
  v delete vm7
  check "console socket: delete leaves nothing behind" '[ -z "$(nothing_left vm7 "$pid7")" ]' "$(nothing_left vm7 "$pid7")"
else
  fail "create --console-socket with process.terminal" "$(cat "$work/err7"); receiver: $(cat "$work/recv7")"
  kill $recvpid 2>/dev/null
fi

. "$(dirname "$0")/vm-tests-fs.sh"
if [ "$failures" -gt 0 ]; then
  echo "vm-tests: $failures check(s) failed"
  for f in "$root"/*/console.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
  exit 1
fi
echo "vm-tests: all checks passed"
