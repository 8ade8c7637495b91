#!/usr/bin/env bash
# mkbundle.sh DIR [ARGS...]: a bundle in DIR (rootfs/ from mkrootfs.sh plus
# config.json from `vessel spec`), with process.args set to ARGS when given and
# process.terminal off, so it runs unattended.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: mkbundle.sh DIR [ARGS...]}; shift
vessel=${VESSEL:-$here/../target/x86_64-unknown-linux-gnu/debug/vessel}
mkdir -p "$dir"
[ -x "$dir/rootfs/bin/busybox" ] || "$here/mkrootfs.sh" "$dir/rootfs"
rm -f "$dir/config.json"
"$vessel" spec --bundle "$dir"
if [ $# -gt 0 ]; then
  args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
  jq --argjson a "$args" '.process.args = $a | .process.terminal = false' "$dir/config.json" > "$dir/config.json.new"
else
  jq '.process.terminal = false' "$dir/config.json" > "$dir/config.json.new"
fi
mv "$dir/config.json.new" "$dir/config.json"
