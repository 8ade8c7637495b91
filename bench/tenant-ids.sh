#!/usr/bin/env bash
# tenant-ids.sh: what a tenant id range costs. `vessel run` of a busybox
# `true` bundle with the host's ids (VESSEL_TENANT_USERNS=off) against the
# same with a private range (a user namespace plus an id-mapped rootfs:
# one more clone for the throwaway namespace, open_tree and mount_setattr).
# hyperfine alternates nothing itself: both commands get the same warmup
# and runs. Prints hyperfine's table and the ratio; asserts nothing.
#
#   bench/tenant-ids.sh            # 100 runs each
#   RUNS=30 BUILD=0 bench/tenant-ids.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
RUNS=${RUNS:-100}
VESSEL=${VESSEL:-$repo/target/x86_64-unknown-linux-gnu/release/vessel}
[ "$(id -u)" = 0 ] || { echo "tenant-ids.sh: run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "tenant-ids.sh: hyperfine is missing (apt install hyperfine)" >&2; exit 1; }
if [ "${BUILD:-1}" = 1 ]; then (cd "$repo" && cargo build --workspace --release --quiet); fi

work=$(mktemp -d /tmp/vessel-tenant-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$repo/rootfs-tools/mkrootfs.sh" "$work/bundle/rootfs" >/dev/null
jq '.process.terminal = false | .process.args = ["true"] | .root.readonly = false' \
  "$repo/runtime-spec/config.json" > "$work/bundle/config.json"
echo "vessel:3000000:655360" > "$work/subid"
export VESSEL_SUBUID_FILE="$work/subid" VESSEL_SUBGID_FILE="$work/subid" \
  VESSEL_TENANT_REGISTRY="$work/registry"
run="$VESSEL --root $work/root run --bundle $work/bundle b\$\$"
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/r.json" \
  -n host-ids "env VESSEL_TENANT_USERNS=off sh -c '$run'" \
  -n tenant-range "env VESSEL_TENANT_USERNS= sh -c '$run'"
python3 - "$work/r.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
a, b = r["host-ids"]["median"], r["tenant-range"]["median"]
print(f"median: host ids {a*1000:.1f} ms, tenant range {b*1000:.1f} ms, ratio {b/a:.2f}")
PY
