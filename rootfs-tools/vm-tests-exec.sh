# vm-tests-exec.sh: VM-mode checks of a running guest through its agent:
# exec (stdio, status, signals, -d, -t with a console socket), the
# workload's namespaces as an exec sees them, ps and events --stats, an
# escape probe, the agent's port. Sourced by vm-tests.sh while vm3 runs (its
# helpers: v, check, fail, state_field; its variables: work, pid3, RECEIVER).
# exec: more processes in the running guest, through the agent.
t1=$(uptime_s)
v exec vm3 sh -c 'echo exec-out; echo exec-err >&2; cat /proc/sys/kernel/random/boot_id; exit 5' > "$work/exec3" 2> "$work/exec3e"; rc=$?
echo "# vessel exec to exit: $(elapsed "$t1") s"
check "exec: stdout, stderr and exit status 5 come back" \
  '[ "$rc" = 5 ] && [ "$(head -1 "$work/exec3")" = exec-out ] && grep -qx exec-err "$work/exec3e"' "rc $rc: $(cat "$work/exec3") / $(cat "$work/exec3e")"
check "exec: the process runs in the guest (its boot id is not the host's)" \
  '[ -n "$(sed -n 2p "$work/exec3")" ] && [ "$(sed -n 2p "$work/exec3")" != "$(cat /proc/sys/kernel/random/boot_id)" ]' "$(cat "$work/exec3")"
got=$(echo from-stdin | v exec vm3 sh -c 'read l; echo got=$l' 2>&1)
check "exec: stdin reaches the process" '[ "$got" = got=from-stdin ]' "$got"
# ps and events --stats ask the guest's agent (docs/vm.md, Process list).
got=$(v ps --format json vm3 2>&1)
check "ps --format json: the workload's pids as the guest numbers them, PID 1 first" 'echo "$got" | grep -qx "\[1\(,[0-9]*\)*\]"' "$got"
got=$(v ps vm3 2>&1)
check "ps: the guest's table shows the workload as PID 1 (parent 0, uid 0)" 'echo "$got" | grep -q "^ *1 *0 *0 sh -c head"' "$got"
got=$(v events --stats vm3 2>&1)
check "events --stats: the guest's memory, CPU and pids next to the host cgroup's" \
  'echo "$got" | grep -q "\"guest\":{" && echo "$got" | grep -q "\"available\":[1-9]" && echo "$got" | grep -q "\"pids\":{\"current\":[1-9]"' "$got"
# The workload's cgroup in the guest: pids, memory and CPU values from the
# spec, seen as its cgroup namespace's root. (No fork burst here: it shares
# the group with the workload, whose own next fork, as in container mode,
# would then be refused and end it.) Each read is an exec of one program.
lim=$(v exec vm3 cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight 2>&1)
cg=$(v exec vm3 cat /proc/self/cgroup 2>&1)
cur=$(v exec vm3 cat /sys/fs/cgroup/pids.current 2>&1)
check "in-guest cgroup: pids.max, memory.max, cpu.max and cpu.weight from the spec, at the cgroup namespace's root, counting the workload's processes" \
  '[ "$(echo $lim)" = "100 268435456 80000 100000 20" ] && [ "$cg" = "0::/" ] && [ "$cur" -ge 2 ] 2> /dev/null && [ "$cur" -le 100 ]' "limits $(echo $lim); cgroup $cg; current $cur"
# The workload's /dev is a tmpfs with the default nodes, as container
# mode's; none of the guest kernel's devices (mem, port, kmsg, the serial
# consoles, the agent's channel port) shows there.
got=$(v exec vm3 sh -c 'grep " /dev " /proc/mounts | head -c 10; echo; ls /dev | tr "\n" " "' 2>&1)
own_dev() { # own_dev OUTPUT: the mount line, then the names in /dev
  local names; names=" $(echo "$1" | sed -n 2p) "
  echo "$1" | head -1 | grep -q "^tmpfs /dev" || return 1
  for n in null zero full random urandom tty ptmx pts shm fd; do
    echo "$names" | grep -q " $n " || return 1
  done
  ! echo "$names" | grep -Eq " (mem|port|kmsg|console|ttyS0|vport[^ ]*|hvc0) "
}
check "exec: /dev is a tmpfs with the default nodes and none of the guest's devices" 'own_dev "$got"' "$got"
# An escape probe, as in container mode: without CAP_SYS_ADMIN or
# CAP_SYS_RAWIO a root process mounts nothing, reaches no raw I/O port or
# physical memory, and /proc/sys is read-only.
got=$(v exec vm3 sh -c 'grep "^CapEff:" /proc/self/status; mount -t tmpfs t /mnt 2>/dev/null && echo mount=ok; head -c1 /dev/port > /dev/null 2>&1 && echo port=ok; head -c1 /dev/mem > /dev/null 2>&1 && echo mem=ok; echo /x > /proc/sys/kernel/modprobe 2>/dev/null && echo sysctl=ok; grep " /sys sysfs " /proc/mounts | grep -q " ro," || echo sysfs-writable=ok; echo probed' 2>&1)
check "exec: an escape probe (mount, /dev/port, /dev/mem, a /proc/sys write) is refused in the guest; /sys is read-only as the spec asks" \
  'echo "$got" | grep -qx probed && ! echo "$got" | grep -q "=ok$"' "$got"
nspid=$(sed -n 's/^NSpid:[[:space:]]*//p' "/proc/$pid3/status" | tr -s ' \t' ' ')
check "the VMM is PID 1 of its own pid namespace" '[ "$nspid" = "$pid3 1" ]' "NSpid: $nspid"
got=$(v exec vm3 sh -c 'echo "init=$(tr "\0" " " < /proc/1/cmdline | cut -c1-14)"; for n in pid mnt ipc uts; do [ "$(readlink /proc/1/ns/$n)" = "$(readlink /proc/self/ns/$n)" ] || echo "other=$n"; done; echo "procs=$(ls -d /proc/[0-9]* | wc -l)"; echo "host=$(hostname)"' 2>&1)
check "exec: in the workload's pid, mount, ipc and uts namespaces, where PID 1 is the workload and no agent or kernel thread shows" \
  'echo "$got" | grep -qx "init=sh -c head -c " && ! echo "$got" | grep -q "^other=" && [ "$(echo "$got" | sed -n "s/^procs=//p")" -lt 10 ] && echo "$got" | grep -qx host=vm-test' "$got"
v exec vm3 sh -c 'kill -TERM $$' > /dev/null 2>&1; rc=$?
check "exec: a process killed by TERM gives 143" '[ "$rc" = 143 ]' "rc $rc"
v exec vm3 no-such-program > /dev/null 2> "$work/exec3e"; rc=$?
check "exec: a missing program gives 127 and names it" '[ "$rc" = 127 ] && grep -q no-such-program "$work/exec3e"' "rc $rc: $(cat "$work/exec3e")"
"$VESSEL" --root "$root" exec vm3 sleep 100 > /dev/null 2>&1 & stand_in=$!
sleep 3; kill -TERM $stand_in; wait $stand_in; rc=$?
check "exec: a TERM to vessel exec reaches the process in the guest (143)" '[ "$rc" = 143 ]' "rc $rc"
v exec -d --pid-file "$work/exec3.pid" vm3 sh -c 'sleep 2; exit 4' > /dev/null 2> "$work/exec3e"; rc=$?
ep=$(cat "$work/exec3.pid" 2>/dev/null)
check "exec -d: returns at once with the stand-in's pid in the pid file" '[ "$rc" = 0 ] && [ -n "$ep" ] && [ -d "/proc/$ep" ]' "rc $rc, pid ${ep:-none}: $(cat "$work/exec3e")"
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2> /dev/null; }
i=0; while [ -n "$ep" ] && alive "$ep" && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
check "exec -d: the stand-in ends when the process does" '[ -n "$ep" ] && ! alive "$ep"' "pid $ep still there"
# The agent's channel port: a root process in the guest (default
# capabilities, CAP_MKNOD among them) makes a node for it and tries it.
got=$(v exec vm3 sh -c 'd=; for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name 2>/dev/null)" = vessel.agent ] && d=$(cat $p/dev); done; [ -n "$d" ] || d="$(sed -n "s/^ *\([0-9]*\) virtio-portsdev$/\1/p" /proc/devices):0"; if busybox mknod /agentport c ${d%%:*} ${d##*:}; then if echo forged > /agentport; then echo opened; else echo refused; fi; else echo no-mknod; fi' 2>&1)
check "exec: a root process in the guest cannot open the agent's port (one opener at a time, the agent holds it)" \
  '! printf "%s\n" "$got" | grep -qx opened && [ "$(state_field vm3 status)" = running ]' "$got"
got=$(v exec -t vm3 sh -c 'tty; [ -t 0 ] && echo stdin-is-tty' 2>&1 | tr -d '\r'); rc=$?
check "exec -t: the process gets a terminal in the guest" 'printf "%s\n" "$got" | grep -q "^/dev/pts/[0-9]" && printf "%s\n" "$got" | grep -qx stdin-is-tty' "rc $rc: $got"
esock=$work/exec-console.sock; rm -f "$esock"
"$RECEIVER" "$esock" "$work/eout" 37 111 pong 2> "$work/erecv" & erecv=$!
i=0; while [ $i -lt 100 ] && [ ! -S "$esock" ]; do sleep 0.1; i=$((i + 1)); done
v exec -t -d --console-socket "$esock" --pid-file "$work/exec3t.pid" vm3 sh -c 'tty; echo ready; i=0; while [ "$(stty size)" != "37 111" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; echo "size=$(stty size)"; read line; echo "got:$line"; exit 6' 2> "$work/exec3e"; rc=$?
i=0; while [ $i -lt 600 ] && kill -0 $erecv 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill $erecv 2>/dev/null; wait $erecv
eout=$(tr -d '\r' < "$work/eout")
check "exec -t -d --console-socket: the master arrives, the resize and the input reach the process" \
  '[ "$rc" = 0 ] && printf "%s\n" "$eout" | grep -qx name=/dev/ptmx && printf "%s\n" "$eout" | grep -qx "size=37 111" && printf "%s\n" "$eout" | grep -qx "got:pong"' \
  "rc $rc: $(cat "$work/exec3e"); receiver: $(cat "$work/erecv"); out: $eout"
