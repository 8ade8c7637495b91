#!/usr/bin/env bash
# bench.sh: vessel (release build), runc and crun side by side, interleaved,
# on one busybox `true` bundle. Prints medians, p90 and vessel/peer ratios and
# writes a JSON result file. No assertions on the figures: it only measures.
#
#   bench/bench.sh                  # N=50 samples per latency metric
#   N=20 ROUNDS=2 bench/bench.sh    # quicker
#
# Environment:
#   N        samples per latency metric per runtime (default 50)
#   N_RSS    samples of peak RSS per runtime (default 10)
#   ROUNDS   rounds of the sequential and parallel batches (default 3)
#   SEQ      containers per sequential batch (default 50)
#   PAR      containers per parallel batch (default 10)
#   RUNTIMES subset and order, e.g. "vessel runc" (default "vessel runc crun")
#   VESSEL RUNC CRUN  binaries (default: target/.../release/vessel, runc, crun)
#   BASELINE another vessel build (say, main before a change), run as the
#            runtime "baseline": RUNTIMES="vessel baseline runc crun"
#   OUT      JSON result file (default bench/results/<UTC time>.json)
#   BUILD=0  skip `cargo build --release`
#
# Why each runtime runs through nsenter: crun 1.8 refuses a hybrid cgroup
# host ("cgroups in hybrid mode not supported"), so crun runs in a private
# mount namespace where a tmpfs hides the cgroup2 mount at
# /sys/fs/cgroup/unified. vessel and runc run in a private mount namespace
# too, one that sees the real hybrid layout. Every command pays the same
# nsenter cost, so the comparison stays fair.
#
# The bundle uses ociVersion 1.0.2: crun 1.8 rejects 1.2.0 ("unknown version
# specified"). It is vessel's default config.json (with its default seccomp
# profile, read-only rootfs, pid/net/ipc/uts/mount namespaces) running `true`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
N=${N:-50}
N_RSS=${N_RSS:-10}
ROUNDS=${ROUNDS:-3}
SEQ=${SEQ:-50}
PAR=${PAR:-10}
RUNTIMES=${RUNTIMES:-"vessel runc crun"}
VESSEL=${VESSEL:-$repo/target/x86_64-unknown-linux-gnu/release/vessel}
RUNC=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
CRUN=${CRUN:-$(command -v crun || echo /usr/bin/crun)}
OUT=${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ).json}

[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root" >&2; exit 1; }
for tool in jq python3 nsenter unshare /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is missing" >&2; exit 1; }
done
if [ "${BUILD:-1}" = 1 ]; then
  (cd "$repo" && cargo build --workspace --release --quiet)
fi

work=$(mktemp -d /tmp/vessel-bench.XXXXXX)
holders=()
cleanup() {
  for rt in $RUNTIMES; do
    for d in "$work/root-$rt"/*/; do
      [ -d "$d" ] && run_rt "$rt" delete -f "$(basename "$d")" >/dev/null 2>&1 || true
    done
  done
  for pid in "${holders[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 143" INT TERM

# The bundle.
mkdir -p "$work/bundle"
"$repo/rootfs-tools/mkrootfs.sh" "$work/bundle/rootfs" >/dev/null
jq '.ociVersion = "1.0.2" | .process.terminal = false | .process.args = ["true"]' \
  "$repo/runtime-spec/config.json" > "$work/bundle/config.json"

# Mount-namespace holders: one with the host's view, one with cgroup2 hidden.
unshare -m --propagation private sleep infinity &
plain_ns=$!
holders+=("$plain_ns")
unshare -m --propagation private sh -c \
  'mount -t tmpfs vessel-bench /sys/fs/cgroup/unified && exec sleep infinity' &
masked_ns=$!
holders+=("$masked_ns")
sleep 0.3
for pid in "$plain_ns" "$masked_ns"; do
  kill -0 "$pid" 2>/dev/null || { echo "bench.sh: mount namespace holder died" >&2; exit 1; }
done

bin_of() {
  case $1 in vessel) echo "$VESSEL" ;; baseline) echo "${BASELINE:?BASELINE must name a vessel binary}" ;; runc) echo "$RUNC" ;; crun) echo "$CRUN" ;; esac
}
ns_of() {
  case $1 in crun) echo "$masked_ns" ;; *) echo "$plain_ns" ;; esac
}
# run_rt RUNTIME ARGS...: the runtime with its own --root, in its namespace.
run_rt() {
  local rt=$1; shift
  nsenter -t "$(ns_of "$rt")" -m -- "$(bin_of "$rt")" --root "$work/root-$rt" "$@"
}
for rt in $RUNTIMES; do
  mkdir -p "$work/root-$rt"
  [ -x "$(bin_of "$rt")" ] || { echo "bench.sh: no $rt binary at $(bin_of "$rt")" >&2; exit 1; }
done

samples="$work/samples.tsv"
: > "$samples"
: > "$work/failures.tsv"
seq_id=0
# next_id sets $id (not $(next_id): a subshell would lose the counter).
next_id() { seq_id=$((seq_id + 1)); id="bench-$$-$seq_id"; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$samples"; }
fail() { echo "bench.sh: $*" >&2; exit 1; }
# A failed run inside a batch is counted and reported, not fatal: on a shared
# machine one transient failure should not throw away the whole run.
failed() {
  echo "bench.sh: $1: $2 failed: $(tr '\n' ' ' < "$work/err")" >&2
  printf '%s\t%s\t%s\n' "$1" "$2" "$(tr '\n' ' ' < "$work/err")" >> "$work/failures.tsv"
}

# The runtimes in a rotating order, so none always goes first.
order() {
  local i=$1; local -a rts=($RUNTIMES); local n=${#rts[@]}
  for ((k = 0; k < n; k++)); do echo "${rts[$(((i + k) % n))]}"; done
}

wait_stopped() {
  local rt=$1 id=$2
  for _ in $(seq 500); do
    run_rt "$rt" state "$id" 2>/dev/null | jq -e '.status == "stopped"' >/dev/null && return 0
    sleep 0.01
  done
  fail "$rt: $id did not stop"
}

one_run() {  # run + delete, timed separately and together
  local rt=$1 id t0 t1 t2
  next_id
  t0=$(now_us)
  run_rt "$rt" run -b "$work/bundle" "$id" </dev/null >/dev/null 2>"$work/err" \
    || { failed "$rt" run; run_rt "$rt" delete -f "$id" >/dev/null 2>&1; return 0; }
  t1=$(now_us)
  run_rt "$rt" delete -f "$id" >/dev/null 2>&1 || fail "$rt delete -f $id failed"
  t2=$(now_us)
  record run "$rt" $((t1 - t0))
  record run_delete "$rt" $((t2 - t0))
}

one_lifecycle() {  # create, start, delete, each timed
  local rt=$1 id t0 t1 t2 t3
  next_id
  t0=$(now_us)
  run_rt "$rt" create -b "$work/bundle" "$id" </dev/null >/dev/null 2>"$work/err" \
    || { failed "$rt" create; run_rt "$rt" delete -f "$id" >/dev/null 2>&1; return 0; }
  t1=$(now_us)
  run_rt "$rt" start "$id" >/dev/null 2>"$work/err" || fail "$rt start failed: $(cat "$work/err")"
  t2=$(now_us)
  wait_stopped "$rt" "$id"
  t3=$(now_us)
  run_rt "$rt" delete "$id" >/dev/null 2>"$work/err" || fail "$rt delete failed: $(cat "$work/err")"
  record create "$rt" $((t1 - t0))
  record start "$rt" $((t2 - t1))
  record delete "$rt" $(($(now_us) - t3))
}

one_rss() {  # peak RSS (KiB) of the runtime and the children it waited for
  local rt=$1 id
  next_id
  /usr/bin/time -f %M -o "$work/rss" \
    nsenter -t "$(ns_of "$rt")" -m -- "$(bin_of "$rt")" --root "$work/root-$rt" \
    run -b "$work/bundle" "$id" </dev/null >/dev/null 2>&1 || fail "$rt run (rss) failed"
  run_rt "$rt" delete -f "$id" >/dev/null 2>&1 || true
  record rss_kib "$rt" "$(tail -n1 "$work/rss")"
}

batch_seq() {
  local rt=$1 t0 ok=1
  t0=$(now_us)
  for _ in $(seq "$SEQ"); do
    local id
    next_id
    run_rt "$rt" run -b "$work/bundle" "$id" </dev/null >/dev/null 2>"$work/err" \
      || { failed "$rt" "run (sequential batch)"; ok=0; }
    run_rt "$rt" delete -f "$id" >/dev/null 2>&1
  done
  # A batch with a failure is not a fair total: it is reported, not recorded.
  [ "$ok" = 1 ] && record "seq${SEQ}_total" "$rt" $(($(now_us) - t0))
  return 0
}

batch_par() {
  local rt=$1 t0 pids=() ids=() ok=1
  local id
  for _ in $(seq "$PAR"); do next_id; ids+=("$id"); done
  t0=$(now_us)
  for id in "${ids[@]}"; do
    (run_rt "$rt" run -b "$work/bundle" "$id" </dev/null >/dev/null 2>"$work/err-$id" \
      && run_rt "$rt" delete -f "$id" >/dev/null 2>>"$work/err-$id") &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || ok=0; done
  local t1
  t1=$(now_us)
  if [ "$ok" = 1 ]; then
    record "par${PAR}_total" "$rt" $((t1 - t0))
  else
    cat "$work"/err-bench-* > "$work/err" 2>/dev/null
    failed "$rt" "run (parallel batch)"
  fi
  rm -f "$work"/err-bench-*
}

echo "bench.sh: warming up" >&2
for rt in $RUNTIMES; do one_run "$rt"; done
: > "$samples"

echo "bench.sh: $N x run/delete and create/start/delete per runtime" >&2
for ((i = 0; i < N; i++)); do
  for rt in $(order "$i"); do one_run "$rt"; one_lifecycle "$rt"; done
done
echo "bench.sh: $N_RSS x peak RSS" >&2
for ((i = 0; i < N_RSS; i++)); do
  for rt in $(order "$i"); do one_rss "$rt"; done
done
echo "bench.sh: $ROUNDS rounds of $SEQ sequential and $PAR parallel" >&2
for ((i = 0; i < ROUNDS; i++)); do
  for rt in $(order "$i"); do batch_seq "$rt"; batch_par "$rt"; done
done

version_of() {
  case $1 in
    baseline) echo "vessel baseline $BASELINE" ;;
    vessel) echo "vessel $("$VESSEL" --version 2>/dev/null | head -n1 | awk '{print $NF}') ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown))" ;;
    *) "$(bin_of "$1")" --version | head -n1 ;;
  esac
}
versions=$(for rt in $RUNTIMES; do printf '%s\t%s\n' "$rt" "$(version_of "$rt")"; done)
mkdir -p "$(dirname "$OUT")"

FAILURES="$work/failures.tsv" SAMPLES="$samples" OUT="$OUT" VERSIONS="$versions" RUNTIMES="$RUNTIMES" \
PARAMS="N=$N N_RSS=$N_RSS ROUNDS=$ROUNDS SEQ=$SEQ PAR=$PAR" \
python3 - <<'PY'
import json, os, platform, statistics, datetime

rts = os.environ["RUNTIMES"].split()
data = {}
for line in open(os.environ["SAMPLES"]):
    metric, rt, value = line.rstrip("\n").split("\t")
    data.setdefault(metric, {}).setdefault(rt, []).append(int(value))

def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

def scale(metric):
    return ("KiB", 1) if metric.endswith("_kib") else ("ms", 1000)

results, ratios = {}, {}
for metric, per in data.items():
    unit, div = scale(metric)
    results[metric] = {}
    for rt, xs in per.items():
        results[metric][rt] = {
            "unit": unit, "n": len(xs),
            "median": round(statistics.median(xs) / div, 3),
            "p90": round(pct(xs, 0.9) / div, 3),
            "min": round(min(xs) / div, 3), "max": round(max(xs) / div, 3),
            "samples": [round(x / div, 3) for x in xs],
        }
    if "vessel" in per:
        for peer in ("baseline", "runc", "crun"):
            if peer in per:
                ratios.setdefault(metric, {})["vessel/" + peer] = round(
                    results[metric]["vessel"]["median"] / results[metric][peer]["median"], 3)

cpus = os.cpu_count()
osname = ""
try:
    for l in open("/etc/os-release"):
        if l.startswith("PRETTY_NAME="):
            osname = l.split("=", 1)[1].strip().strip('"')
except OSError:
    pass
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"kernel": platform.release(), "cpus": cpus, "os": osname},
    "versions": dict(l.split("\t", 1) for l in os.environ["VERSIONS"].splitlines() if l),
    "params": os.environ["PARAMS"],
    "results": results,
    "ratios_of_medians": ratios,
    "failures": [dict(zip(("runtime", "what", "stderr"), l.rstrip("\n").split("\t", 2)))
                 for l in open(os.environ["FAILURES"]) if l.strip()],
}
with open(os.environ["OUT"], "w") as f:
    json.dump(doc, f, indent=1)

order = ["run", "run_delete", "create", "start", "delete", "rss_kib"]
order += sorted(m for m in results if m not in order)
print(f"machine: {osname}, kernel {platform.release()}, {cpus} CPUs; {os.environ['PARAMS']}")
for rt in rts:
    print(f"  {rt}: {doc['versions'].get(rt, '?')}")
head = f"{'metric':<16}" + "".join(f"{rt + ' med/p90':>22}" for rt in rts)
head += "".join(f"{'vessel/' + p:>13}" for p in ("baseline", "runc", "crun") if p in rts and "vessel" in rts)
print(head)
for m in order:
    if m not in results:
        continue
    unit = results[m][rts[0]]["unit"] if rts[0] in results[m] else ""
    row = f"{m + ' (' + unit + ')':<16}"
    for rt in rts:
        r = results[m].get(rt)
        cell = "%.1f / %.1f" % (r["median"], r["p90"]) if r else "-"
        row += f"{cell:>22}"
    for p in ("baseline", "runc", "crun"):
        if p in rts and "vessel" in rts:
            row += f"{ratios.get(m, {}).get('vessel/' + p, float('nan')):>13.2f}"
    print(row)
for f in doc["failures"]:
    print(f"failure: {f['runtime']}: {f['what']}: {f['stderr']}")
print(f"results: {os.environ['OUT']}")
PY
