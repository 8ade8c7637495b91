#!/bin/sh
# v2-tests.sh: vessel's container mode on a pure cgroup v2 host. Runs INSIDE
# the VM of rootfs-tools/nested-vm.sh (cgroup2 alone at /sys/fs/cgroup),
# started by tests/cgroup_v2_vm.rs, which copies in the vessel binary, this
# repo's rootfs-tools/ and runtime-spec/ and the test binaries, at the paths
# the test binaries have baked in (CARGO_BIN_EXE_vessel, CARGO_MANIFEST_DIR).
#
# 1. A direct check: a container with memory, pids and cpu limits; the
#    values in /sys/fs/cgroup/vessel/<id>/ and, through a cgroup namespace,
#    in the container's own /sys/fs/cgroup; pause/resume via cgroup.freeze
#    and update when vessel implements them; delete removes the cgroup.
# 2. Rootless set-up: the user vessel-rootless-test with /etc/subuid and
#    /etc/subgid ranges, and a cgroup delegated to it as systemd delegates
#    user@UID.service (tests/rootless.rs finds it and runs its delegated
#    cgroup tests; elsewhere they say SKIPPED).
# 3. The test binaries listed in $V2_PLAN, one line each:
#       LABEL BINARY [ARG]...
#    run one at a time with --test-threads=1 (ARGs: a filter, --skip ...),
#    with their scratch (target/test-scratch) on an ext4 loop device.
#
# Env: VESSEL (the vessel binary), REPO (the repo dir, for mkrootfs.sh),
#      V2_PLAN (default /v2/plan), BUSYBOX (default /bin/busybox).
# Prints "ok - NAME" / "FAIL - NAME: why" / "skip - NAME: why" per check,
# "suite LABEL: passed|FAILED (N s)" per test binary, then a summary;
# exits 1 on any failure. POSIX sh: it runs under busybox.
set -u

: "${VESSEL:?VESSEL must name the vessel binary}"
: "${REPO:?REPO must name the repo directory}"
V2_PLAN=${V2_PLAN:-/v2/plan}
export BUSYBOX=${BUSYBOX:-/bin/busybox}

# The VM's root is the initramfs (rootfs), which pivot_root(2) refuses to
# move ("not attached"). Re-root once, as switch_root does: a bind mount of
# the whole tree moved on top of "/". A plain chroot would not do: the kernel
# refuses user namespaces to a chrooted process (clone: EPERM).
root_fstype() {
  awk '$5 == "/" { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }' /proc/self/mountinfo
}
if [ -z "${V2_REROOTED:-}" ] && [ "$(root_fstype)" = rootfs ]; then
  mkdir -p /.v2root
  mount --rbind / /.v2root || { echo "FAIL - setup: mount --rbind / /.v2root"; exit 1; }
  cd /.v2root || exit 1
  mount --move . / || { echo "FAIL - setup: mount --move /.v2root /"; exit 1; }
  V2_REROOTED=1 exec chroot . /bin/sh "$0" "$@"
fi
cd /

# Scripts in rootfs-tools/ start with "#!/usr/bin/env bash".
[ -e /usr/bin/env ] || { mkdir -p /usr/bin; ln -s /bin/busybox /usr/bin/env; }
command -v bash >/dev/null 2>&1 || echo "# no bash in the VM: rootfs-tools/*.sh will fail"

failures=0
ok() { echo "ok - $1"; }
fail() { echo "FAIL - $1: $2"; failures=$((failures + 1)); }
skip() { echo "skip - $1: $2"; }
check() { # check NAME CONDITION-AS-STRING WHY
  if eval "$2"; then ok "$1"; else fail "$1" "$3"; fi
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN{printf "%.1f", b-a}'; }
work=/var/tmp/v2-tests
# The default root: its containers get the default cgroupsPath /vessel/<id>
# (any other --root gets /vessel/<hash of the root>-<id>).
state=/run/vessel
v() { "$VESSEL" --root "$state" "$@"; }
state_field() { # state_field ID FIELD: a top-level string or number of `vessel state`
  v state "$1" 2>/dev/null | tr -d '\n' | sed -n "s/.*\"$2\"[ ]*:[ ]*\"\{0,1\}\([^\",}]*\).*/\1/p"
}
wait_for() { # wait_for SECONDS CONDITION-AS-STRING
  i=0
  while [ $i -lt $(($1 * 10)) ]; do
    eval "$2" && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
# A "not implemented yet" answer means the subcommand has not landed.
unimplemented() { grep -q 'not implemented' "$1"; }

echo "# cgroup2 at /sys/fs/cgroup: $(grep -c . /proc/self/mountinfo) mounts, controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
if grep -q ' - cgroup ' /proc/self/mountinfo; then
  fail "setup" "a cgroup v1 hierarchy is mounted: this is not a pure v2 host"
fi
for f in "$VESSEL" "$REPO/rootfs-tools/mkrootfs.sh" "$REPO/runtime-spec/config.json"; do
  [ -e "$f" ] || { echo "FAIL - setup: $f missing"; exit 1; }
done
rm -rf "$work" "$state"; mkdir -p "$work" "$state"

# --- 1. Direct check -------------------------------------------------------
t0=$(uptime_s)
id=v2direct
cg=/sys/fs/cgroup/vessel/$id
bundle=$work/bundle
mkdir -p "$bundle"
"$REPO/rootfs-tools/mkrootfs.sh" "$bundle/rootfs" || { echo "FAIL - setup: mkrootfs.sh"; exit 1; }
# The workload records its cgroup view, then waits for the marker file the
# check writes after pause/resume (so a frozen workload is visible).
cat > "$bundle/config.json" <<'EOF'
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh", "-c", "cd /sys/fs/cgroup && { cat memory.max pids.max cpu.max; cat /proc/self/cgroup; echo 1000 > pids.max && echo raised-own-pids.max; ls; } > /inside.tmp 2>&1; mv /inside.tmp /inside; i=0; while true; do i=$((i+1)); echo $i > /ticks; sleep 0.2; done"],
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
    "cwd": "/"
  },
  "root": {"path": "rootfs", "readonly": false},
  "hostname": "v2",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "linux": {
    "resources": {
      "memory": {"limit": 67108864},
      "pids": {"limit": 42},
      "cpu": {"quota": 50000, "period": 100000}
    },
    "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}, {"type": "cgroup"}]
  }
}
EOF
cp "$bundle/config.json" "$work/direct.json"
if v create --bundle "$bundle" "$id" > "$work/create.out" 2>&1; then
  ok "create with memory, pids and cpu limits"
  check "cgroup $cg exists" '[ -d "$cg" ]' "$(ls /sys/fs/cgroup/vessel 2>&1)"
  check "memory.max is 67108864" '[ "$(cat "$cg/memory.max" 2>&1)" = 67108864 ]' "$(cat "$cg/memory.max" 2>&1)"
  check "pids.max is 42" '[ "$(cat "$cg/pids.max" 2>&1)" = 42 ]' "$(cat "$cg/pids.max" 2>&1)"
  check "cpu.max is 50000 100000" '[ "$(cat "$cg/cpu.max" 2>&1)" = "50000 100000" ]' "$(cat "$cg/cpu.max" 2>&1)"
  pid=$(state_field "$id" pid)
  check "the init process is in the cgroup" '[ -n "$pid" ] && grep -qx "$pid" "$cg/cgroup.procs"' \
    "pid ${pid:-?}; cgroup.procs: $(cat "$cg/cgroup.procs" 2>&1); /proc/$pid/cgroup: $(cat "/proc/$pid/cgroup" 2>&1)"
  check "its /proc/PID/cgroup is 0::/vessel/$id" '[ "$(cat "/proc/$pid/cgroup" 2>&1)" = "0::/vessel/$id" ]' \
    "$(cat "/proc/$pid/cgroup" 2>&1)"

  v start "$id" >> "$work/create.out" 2>&1 || fail "start" "$(cat "$work/create.out")"
  if wait_for 30 '[ -e "$bundle/rootfs/inside" ]'; then
    inside=$(cat "$bundle/rootfs/inside")
    check "inside: /sys/fs/cgroup/memory.max is 67108864" '[ "$(sed -n 1p "$bundle/rootfs/inside")" = 67108864 ]' "$inside"
    check "inside: /sys/fs/cgroup/pids.max is 42" '[ "$(sed -n 2p "$bundle/rootfs/inside")" = 42 ]' "$inside"
    check "inside: /sys/fs/cgroup/cpu.max is 50000 100000" '[ "$(sed -n 3p "$bundle/rootfs/inside")" = "50000 100000" ]' "$inside"
    check "inside: the cgroup namespace shows 0::/" '[ "$(sed -n 4p "$bundle/rootfs/inside")" = "0::/" ]' "$inside"
    check "inside: the ro cgroup mount refuses raising its own pids.max" \
      '! grep -q raised-own-pids.max "$bundle/rootfs/inside" && [ "$(cat "$cg/pids.max")" = 42 ]' "$inside"
  else
    fail "the workload reports its cgroup view" "no /inside after 30 s: $(cat "$work/create.out"); state: $(v state "$id" 2>&1)"
  fi

  # pause/resume through cgroup.freeze.
  if v pause "$id" > "$work/pause.out" 2>&1; then
    check "pause: cgroup.freeze is 1" '[ "$(cat "$cg/cgroup.freeze")" = 1 ]' "$(cat "$cg/cgroup.freeze")"
    check "pause: cgroup.events says frozen 1" 'grep -qx "frozen 1" "$cg/cgroup.events"' "$(cat "$cg/cgroup.events")"
    check "pause: state is paused" '[ "$(state_field "$id" status)" = paused ]' "$(v state "$id" 2>&1)"
    a=$(cat "$bundle/rootfs/ticks" 2>/dev/null); sleep 1; b=$(cat "$bundle/rootfs/ticks" 2>/dev/null)
    check "pause: the workload stops ticking" '[ -n "$a" ] && [ "$a" = "$b" ]' "ticks $a then $b"
    if v resume "$id" > "$work/resume.out" 2>&1; then
      check "resume: cgroup.freeze is 0" '[ "$(cat "$cg/cgroup.freeze")" = 0 ]' "$(cat "$cg/cgroup.freeze")"
      check "resume: cgroup.events says frozen 0" 'grep -qx "frozen 0" "$cg/cgroup.events"' "$(cat "$cg/cgroup.events")"
      check "resume: state is running" '[ "$(state_field "$id" status)" = running ]' "$(v state "$id" 2>&1)"
      a=$(cat "$bundle/rootfs/ticks" 2>/dev/null)
      check "resume: the workload ticks again" 'wait_for 10 "[ \"\$(cat \"$bundle/rootfs/ticks\")\" != \"$a\" ]"' "ticks stay at $a"
    else
      fail "resume" "$(cat "$work/resume.out")"
    fi
  elif unimplemented "$work/pause.out"; then
    skip "pause/resume" "$(cat "$work/pause.out")"
  else
    fail "pause" "$(cat "$work/pause.out")"
  fi

  # update: new limits land in the same files.
  if v update --memory 134217728 --pids-limit 64 --cpu-quota 20000 "$id" > "$work/update.out" 2>&1; then
    check "update: memory.max is 134217728" '[ "$(cat "$cg/memory.max")" = 134217728 ]' "$(cat "$cg/memory.max")"
    check "update: pids.max is 64" '[ "$(cat "$cg/pids.max")" = 64 ]' "$(cat "$cg/pids.max")"
    check "update: cpu.max is 20000 100000" '[ "$(cat "$cg/cpu.max")" = "20000 100000" ]' "$(cat "$cg/cpu.max")"
  elif unimplemented "$work/update.out"; then
    skip "update" "$(cat "$work/update.out")"
  else
    fail "update" "$(cat "$work/update.out")"
  fi

  # events --stats reads memory.current, pids.current, cpu.stat.
  if v events --stats "$id" > "$work/events.out" 2>&1; then
    ev=$(tr -d ' \n' < "$work/events.out")
    check "events --stats: pids.current counts the workload" \
      'echo "$ev" | grep -q "\"pids\":{\"current\":[1-9]"' "$ev"
    # (keys come sorted; the memory "usage" object is the one with the limit)
    check "events --stats: memory usage above zero, limit 134217728" \
      'echo "$ev" | grep -o "\"usage\":{[^}]*}" | grep "\"limit\":134217728" | grep -q "\"usage\":[1-9]"' "$ev"
    check "events --stats: cpu usage total above zero" 'echo "$ev" | grep -q "\"total\":[1-9]"' "$ev"
  elif unimplemented "$work/events.out"; then
    skip "events --stats" "$(cat "$work/events.out")"
  else
    fail "events --stats" "$(cat "$work/events.out")"
  fi

  v kill "$id" KILL > "$work/kill.out" 2>&1 || fail "kill KILL" "$(cat "$work/kill.out")"
  check "kill: state is stopped" 'wait_for 20 "[ \"\$(state_field $id status)\" = stopped ]"' "$(v state "$id" 2>&1)"
  v delete "$id" > "$work/delete.out" 2>&1 || fail "delete" "$(cat "$work/delete.out")"
  check "delete removes $cg" '[ ! -e "$cg" ]' "$(ls -d "$cg" 2>&1)"
  check "delete removes the state" '[ ! -e "$state/$id" ]' "$(ls "$state" 2>&1)"
else
  fail "create with memory, pids and cpu limits" "$(cat "$work/create.out")"
  v delete -f "$id" > /dev/null 2>&1
fi

# No pid namespace: the workload's background child outlives init, so
# delete -f must find it through cgroup.procs and kill it before rmdir.
# The caller sits in a non-root cgroup holding processes, and the
# cgroupsPath is relative: runc puts it under the caller's parent cgroup.
mkdir -p /sys/fs/cgroup/v2caller/shell
echo $$ > /sys/fs/cgroup/v2caller/shell/cgroup.procs
id=v2stray
sed -e 's/{"type": "pid"}, //' -e 's/, {"type": "cgroup"}//' \
  -e 's|"resources": {|"cgroupsPath": "rel/v2stray", "resources": {|' \
  -e 's|"args": \[.*\],|"args": ["sh", "-c", "sleep 1001 \& echo started > /started; exec sleep 1002"],|' \
  "$bundle/config.json" > "$work/stray.json"
cp "$work/stray.json" "$bundle/config.json"
rm -f "$bundle/rootfs/started"
cg=/sys/fs/cgroup/v2caller/rel/v2stray
if v run -d --bundle "$bundle" "$id" > "$work/stray.out" 2>&1 < /dev/null; then
  wait_for 20 '[ -e "$bundle/rootfs/started" ]'
  check "relative cgroupsPath lands under the caller's parent cgroup" '[ -d "$cg" ]' \
    "$(find /sys/fs/cgroup -name v2stray 2>&1)"
  check "no pid namespace: two processes in cgroup.procs" '[ "$(grep -c . "$cg/cgroup.procs" 2>/dev/null)" = 2 ]' \
    "$(cat "$cg/cgroup.procs" 2>&1)"
  v delete -f "$id" > "$work/stray-delete.out" 2>&1 || fail "delete -f" "$(cat "$work/stray-delete.out")"
  check "delete -f kills the process init left behind" '! ps | grep -q "[s]leep 100[12]"' "$(ps | grep '[s]leep 100')"
  check "delete -f removes $cg" '[ ! -e "$cg" ]' "$(cat "$cg/cgroup.procs" 2>&1)"
else
  fail "run -d without a pid namespace, relative cgroupsPath" "$(cat "$work/stray.out")"
fi
echo $$ > /sys/fs/cgroup/cgroup.procs
rmdir /sys/fs/cgroup/v2caller/rel /sys/fs/cgroup/v2caller/shell /sys/fs/cgroup/v2caller 2>/dev/null

# memory.max is enforced: a 48 MiB buffer under a 16 MiB limit is OOM-killed.
id=v2oom
sed -e 's|"args": \[.*\],|"args": ["dd", "if=/dev/zero", "of=/dev/null", "bs=48M", "count=1"],|' \
  -e 's|"cgroupsPath": "rel/v2stray", ||' -e 's|"limit": 67108864|"limit": 16777216|' \
  "$work/stray.json" > "$bundle/config.json"
v run --bundle "$bundle" "$id" > "$work/oom.out" 2>&1 < /dev/null
rc=$?
check "memory.max 16 MiB: a 48 MiB allocation is OOM-killed (exit 137)" '[ "$rc" = 137 ]' \
  "exit $rc: $(cat "$work/oom.out"); $(dmesg 2>/dev/null | grep -i oom | tail -2)"
v delete -f "$id" > /dev/null 2>&1
check "run removes its cgroup" '[ ! -e /sys/fs/cgroup/vessel/$id ]' "$(ls /sys/fs/cgroup/vessel 2>&1)"

# A container that delegates its cgroup (systemd inside does this): init
# moves to a sub-cgroup and enables a controller for its children, so the
# container's own cgroup may hold no process ("no internal processes").
# exec must still work, joining init's cgroup as runc does.
id=v2nest
sed -e 's|"args": \[.*\],|"args": ["sh", "-c", "mkdir /sys/fs/cgroup/init \&\& echo $$ > /sys/fs/cgroup/init/cgroup.procs \&\& echo +pids > /sys/fs/cgroup/cgroup.subtree_control \&\& echo ok > /nested; exec sleep 1000"],|' \
  -e 's|"relatime", "ro"\]|"relatime", "rw"]|' \
  "$work/direct.json" > "$bundle/config.json"
rm -f "$bundle/rootfs/nested"
cg=/sys/fs/cgroup/vessel/$id
if v run -d --bundle "$bundle" "$id" > "$work/nest.out" 2>&1 < /dev/null; then
  if wait_for 20 '[ -e "$bundle/rootfs/nested" ]'; then
    check "delegation: init moved itself to $cg/init" 'grep -qx pids "$cg/cgroup.subtree_control"' \
      "subtree_control: $(cat "$cg/cgroup.subtree_control" 2>&1)"
    if v exec "$id" cat /proc/self/cgroup > "$work/nest-exec.out" 2>&1; then
      check "delegation: exec joins init's cgroup" 'grep -qx "0::/init" "$work/nest-exec.out"' "$(cat "$work/nest-exec.out")"
    elif unimplemented "$work/nest-exec.out"; then
      skip "delegation: exec" "$(cat "$work/nest-exec.out")"
    else
      fail "delegation: exec into a container whose cgroup is not a leaf" "$(cat "$work/nest-exec.out")"
    fi
  else
    fail "delegation: the workload makes a sub-cgroup" "no /nested; $(v state "$id" 2>&1)"
  fi
  v delete -f "$id" > "$work/nest-delete.out" 2>&1 || fail "delegation: delete -f" "$(cat "$work/nest-delete.out")"
  check "delegation: delete -f removes $cg and its sub-cgroup" '[ ! -e "$cg" ]' "$(find "$cg" 2>&1)"
else
  fail "delegation: run -d with a rw cgroup mount" "$(cat "$work/nest.out")"
fi

# Device rules: cgroup2 enforces them through a BPF program. The workload may
# mknod (CAP_MKNOD) any node, but only allowed devices open. /dev/kmsg
# (1:11) opened write-only needs no capability, so only the rules stop it;
# a second run allows "c 1:11 w" and must get through.
id=v2dev
devrun() { # devrun EXTRA-RULES OUT
  sed -e 's|"args": \[.*\],|"args": ["sh", "-c", "mknod /kmsg c 1 11; mknod /null2 c 1 3; echo v2-tests-devices > /kmsg \&\& echo kmsg-opened; echo x > /null2 \&\& echo null-ok; echo x > /dev/null \&\& echo devnull-ok"], "capabilities": {"bounding": ["CAP_MKNOD"], "effective": ["CAP_MKNOD"], "permitted": ["CAP_MKNOD"]},|' \
    -e "s|\"resources\": {|\"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"}$1], |" \
    "$work/direct.json" > "$bundle/config.json"
  rm -f "$bundle/rootfs/kmsg" "$bundle/rootfs/null2"
  v run --bundle "$bundle" "$id" > "$2" 2>&1 < /dev/null
  v delete -f "$id" > /dev/null 2>&1
}
devrun '' "$work/dev.out"
check "devices: the default devices open (/dev/null, a mknod'ed 1:3)" \
  'grep -qx devnull-ok "$work/dev.out" && grep -qx null-ok "$work/dev.out"' "$(cat "$work/dev.out")"
check "devices: a mknod'ed /dev/kmsg (1:11) does not open" \
  '! grep -q kmsg-opened "$work/dev.out" && grep -q "kmsg.*not permitted" "$work/dev.out"' "$(cat "$work/dev.out")"
devrun ', {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}' "$work/dev2.out"
check "devices: with \"c 1:11 w\" allowed, it opens for writing" 'grep -qx kmsg-opened "$work/dev2.out"' "$(cat "$work/dev2.out")"
echo "# direct check: $(elapsed "$t0") s"

# --- 2. Rootless set-up -------------------------------------------------------
# What tests/rootless.rs finds on a systemd host with the user logged in:
# the user (with the /etc/subuid and /etc/subgid range useradd gives), and
# a delegated cgroup as systemd makes for user@UID.service (Delegate=pids
# memory cpu): those controllers enabled in the parents' subtree_control
# (cpuset, io and the rest available there but not enabled), the directory,
# its cgroup.procs, cgroup.subtree_control and cgroup.threads owned by the
# user. The tests place the user's vessel commands in a leaf below it.
# setpriv, newuidmap and newgidmap come from the host when it has them
# (tests/cgroup_v2_vm.rs copies them); busybox's setpriv cannot
# --init-groups, so without the host's the rootless tests say SKIPPED.
ruser=vessel-rootless-test
ruid=1001
if ! grep -q "^$ruser:" /etc/passwd; then
  echo "$ruser:x:$ruid:$ruid::/nonexistent:/bin/false" >> /etc/passwd
  echo "$ruser:x:$ruid:" >> /etc/group
fi
ruid=$(id -u "$ruser")
for f in /etc/subuid /etc/subgid; do
  grep -q "^$ruser:" "$f" 2>/dev/null || echo "$ruser:100000:65536" >> "$f"
done
for t in setpriv newuidmap newgidmap; do
  [ -x "/usr/bin/$t" ] || echo "# rootless: no /usr/bin/$t in the VM (not on the host?)"
done
check "newuidmap is setuid root" '[ ! -e /usr/bin/newuidmap ] || [ -u /usr/bin/newuidmap ]' \
  "$(ls -l /usr/bin/newuidmap)"
uslice=/sys/fs/cgroup/user.slice
deleg=$uslice/user-$ruid.slice/user@$ruid.service
mkdir -p "$deleg"
for d in "$uslice" "$uslice/user-$ruid.slice"; do
  echo "+cpu +memory +pids" > "$d/cgroup.subtree_control" || fail "rootless setup" "enable cpu memory pids in $d"
done
chown "$ruid:$ruid" "$deleg" "$deleg/cgroup.procs" "$deleg/cgroup.subtree_control" "$deleg/cgroup.threads"
echo "# rootless: $ruser ($ruid), delegated cgroup $deleg: $(cat "$deleg/cgroup.controllers")"

# --- 3. The test binaries ---------------------------------------------------
# Their scratch (target/test-scratch, bundles and volumes) on ext4: the RAM
# root is tmpfs, which has no id-mapped mounts before Linux 6.3, and the
# idmap and tenant_ids suites id-map bind mounts and rootfs. A sparse image
# in RAM on a loop device (the loop module: nested-vm.sh --module), mounted
# with discard so deleted files give their RAM back.
scratch=$REPO/target/test-scratch
img=/var/tmp/v2-scratch.img
mkdir -p "$scratch"
if [ -e /dev/loop-control ] && truncate -s 1G "$img" && mke2fs -q -F "$img" > "$work/mke2fs.out" 2>&1 &&
  mount -t ext4 -o loop,discard "$img" "$scratch" 2> "$work/mount.out"; then
  echo "# test scratch: ext4 on $(awk -v d="$scratch" '$2 == d {print $1}' /proc/mounts)"
else
  echo "# test scratch stays on tmpfs (no loop device, or mke2fs/mount failed: $(cat "$work/mke2fs.out" "$work/mount.out" 2>/dev/null)): id-mapped mounts will fail"
  rm -f "$img"
fi
suites_failed=''
if [ -f "$V2_PLAN" ]; then
  while read -r label bin args; do
    [ -n "$label" ] || continue
    t0=$(uptime_s)
    echo "# suite $label: $bin $args --test-threads=1"
    # shellcheck disable=SC2086 # args are words by design
    "$bin" $args --test-threads=1 > "$work/suite.out" 2>&1 < /dev/null
    rc=$?
    # Per-test lines and the summary; the whole output when it failed.
    if [ "$rc" = 0 ]; then
      grep -E '^test .* \.\.\. |^test result:|^SKIPPED|^running' "$work/suite.out"
      grep -c 'SKIPPED' "$work/suite.out" | awk '$1 > 0 {print "# (" $1 " SKIPPED lines)"}'
      echo "suite $label: passed ($(elapsed "$t0") s)"
    else
      cat "$work/suite.out"
      echo "suite $label: FAILED, exit $rc ($(elapsed "$t0") s)"
      failures=$((failures + 1)); suites_failed="$suites_failed $label"
    fi
  done < "$V2_PLAN"
else
  echo "# no test plan at $V2_PLAN"
fi

umount "$scratch" 2>/dev/null && rm -f "$img"

# The delegated tree goes (it must be empty: a container cgroup or a
# test's leaf left in it is a leak, which the next check lists).
find "$uslice" -depth -type d -exec rmdir {} \; 2>/dev/null
left=$(find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | grep -v '^/sys/fs/cgroup/vessel$' | head -5)
check "no cgroup left behind" '[ -z "$left" ]' "$left"

if [ "$failures" -gt 0 ]; then
  echo "v2-tests: $failures failure(s)${suites_failed:+; failed suites:$suites_failed}"
  exit 1
fi
echo "v2-tests: all checks passed"
