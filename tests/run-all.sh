#!/usr/bin/env bash
# The whole test suite, as root: format and lint checks, unit tests, and the
# integration tests that run real containers (plus the nested-VM suites for
# cgroup v2 and VM mode, which print SKIPPED where the host cannot run them).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run-all.sh: the tests run real containers: run as root" >&2; exit 2; }
export VESSEL_VM_TESTS=${VESSEL_VM_TESTS:-1}
export VESSEL_V2_TESTS=${VESSEL_V2_TESTS:-1}
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo build (debug binaries used by the tests)"
cargo build --bins
echo "== cargo test"
# Two threads: the machine has two cores and the nested-VM suites are heavy.
cargo test --no-fail-fast -- --test-threads="${VESSEL_TEST_THREADS:-2}"
echo "== all tests passed"
