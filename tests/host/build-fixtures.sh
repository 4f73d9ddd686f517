#!/usr/bin/env bash
# Builds the fixture components that tests/host/fixtures/spin.toml runs, for wasm32-wasip1,
# into the workspace's target directory (where the manifest expects them).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo build --target wasm32-wasip1 --release \
    -p spin-test-host-fixture-echo \
    -p spin-test-host-fixture-outbound \
    -p spin-test-host-fixture-storage \
    -p spin-test-host-fixture-variables \
    "$@"
