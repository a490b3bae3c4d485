#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests and the integration
# tests that mount real volumes. Needs root, /dev/fuse and the packages that
# .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the integration tests mount filesystems and act as other users; run as root" >&2
    exit 2
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The integration tests run the daemon and keytool binaries: build them first.
cargo build --workspace --bins --quiet
cargo test --workspace
