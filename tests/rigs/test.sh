#!/usr/bin/env bash
# The whole test suite: set-up (packages, real root filesystems), then every test, then
# the fuzz targets' smoke pass.
# Tests that need root or a rootfs say "skipping: ..." where they cannot run; with
# CONTAINERSPEC_REQUIRE_ROOTFS=1 (CI) a missing rootfs is a failure instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/rigs/rust.sh
tests/rigs/setup.sh
cargo test --release --locked -- --test-threads=2 "$@"
# Every fuzz target briefly over its seed corpus and saved findings (fuzz/README.md).
tests/rigs/fuzz.sh
