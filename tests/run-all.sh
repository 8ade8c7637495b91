#!/usr/bin/env bash
# The whole test suite, as root: format and lint checks, unit tests of every
# crate, and the integration tests that run real containers (plus the
# nested-VM suites for cgroup v2 and VM mode). A test that cannot check what
# it is named for on this host says SKIPPED and why; the list and the count
# are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run-all.sh: the tests run real containers: run as root" >&2; exit 2; }
export VESSEL_VM_TESTS=${VESSEL_VM_TESTS:-1}
export VESSEL_V2_TESTS=${VESSEL_V2_TESTS:-1}
export VESSEL_SKIP_LOG="$PWD/target/test-skips.log"
mkdir -p target
: > "$VESSEL_SKIP_LOG"
report_skips() {
  local n
  n=$(wc -l < "$VESSEL_SKIP_LOG")
  echo "== skipped: $n test(s) or parts did not check what they are named for on this host"
  sed 's/^/   /' "$VESSEL_SKIP_LOG"
}
trap report_skips EXIT
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (the debug binaries the tests run: vessel, vessel-vmm, vessel-agent, vessel-compare, vessel-probe)"
cargo build --workspace --bins
echo "== cargo test"
# Two threads: the machine has two cores and the nested-VM suites are heavy.
cargo test --workspace --no-fail-fast -- --test-threads="${VESSEL_TEST_THREADS:-2}"
echo "== all tests passed"
