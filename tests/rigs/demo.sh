#!/usr/bin/env bash
# The main job on a real example: builds containerspec, describes this host, then
# inspects a real Debian 12 root filesystem with MPICH (built once and cached).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/rigs/rust.sh
tests/rigs/setup.sh bookworm-mpich
cargo build --release --locked --quiet
root="$(tests/rigs/rootfs.sh bookworm-mpich)/bookworm-mpich"
set -x
target/release/containerspec host
target/release/containerspec inspect "$root"
