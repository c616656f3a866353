#!/usr/bin/env bash
# Benchmark of the inventory commands, side by side in one run (see bench.py):
#   tests/bench/run.sh [ROUNDS]
# Installs the Python archspec (the baseline for `host`) into a cached virtualenv and
# builds the bookworm MPICH rootfs if needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${CONTAINERSPEC_TEST_CACHE:-/var/cache/containerspec-test}"
tests/rigs/setup.sh bookworm-mpich trixie-mpich
command -v /usr/bin/time >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
cargo build --release --locked --quiet
tests/rigs/archspec.sh >/dev/null
venv="$cache/venv-archspec"
# Site-prefix host MPIs (root only: site-mpi.sh builds root-owned host roots).
site=()
if [[ $(id -u) -eq 0 ]]; then
  site=(--site-hosts "$(tests/rigs/site-mpi.sh)/hosts")
else
  echo "site MPI benchmark skipped: needs root (tests/rigs/site-mpi.sh builds the host roots)"
fi
python3 tests/bench/bench.py \
  --containerspec target/release/containerspec \
  --archspec "$venv/bin/archspec" \
  --rootfs "$cache/rootfs/bookworm-mpich" \
  --rounds "${1:-21}" "${site[@]}"

# Apptainer: `apptainer check` on a SIF read in place against `inspect` of the directory
# it was built from (root only: the SIF is built by the Apptainer rig).
if [[ $(id -u) -eq 0 ]]; then
  echo
  sif="$(tests/rigs/apptainer.sh sif trixie-mpich)"
  python3 tests/bench/apptainer.py \
    --containerspec target/release/containerspec \
    --sif "$sif" \
    --rootfs "$cache/rootfs/trixie-mpich" \
    --rounds "${1:-21}"
else
  echo "apptainer benchmark skipped: needs root (tests/rigs/apptainer.sh builds the SIF)"
fi

# The hook under runc (root only): the hook against /bin/true as the hook.
if [[ $(id -u) -eq 0 ]] && command -v runc >/dev/null; then
  echo
  unshare --mount --propagation private python3 tests/bench/hook.py \
    --containerspec target/release/containerspec \
    --rootfs "$cache/rootfs/bookworm-mpich" \
    --rounds "${1:-21}"
else
  echo "hook benchmark skipped: needs root and runc (tests/rigs/setup.sh)"
fi

# Worst cases the limits allow (root only: overlay mounts): the largest loader cache and
# dynamic symbol table the readers accept, in the bookworm MPICH container, against the
# container as shipped (tests/integration/worst_case.rs).
if [[ $(id -u) -eq 0 ]]; then
  echo
  CONTAINERSPEC_BENCH_ROUNDS="${1:-21}" cargo test --release --locked --quiet --test integration \
    worst_case_inputs -- --ignored --nocapture 2>&1 | sed -n '/^worst cases/,/^test /p'
else
  echo "worst-case benchmark skipped: needs root (overlay mounts)"
fi

# Dockerfiles: `dockerfile check` over 200 Dockerfiles against a registry on loopback, beside
# `skopeo inspect` of the same references (root only: the registry rig's images are built
# from the root-owned test roots).
if [[ $(id -u) -eq 0 ]]; then
  echo
  tests/rigs/registry.sh >/dev/null
  python3 tests/bench/dockerfile.py \
    --containerspec target/release/containerspec \
    --layouts "$cache/registry/layouts" \
    --rounds "${2:-5}"
else
  echo "dockerfile benchmark skipped: needs root (tests/rigs/registry.sh builds the images)"
fi

# Clusters: `match --hosts` over 10,000 host descriptions, one image and 100, against one
# `match` process per (image, host).
echo
tests/rigs/setup.sh bullseye-mpich bookworm-mpich trixie-mpich \
  bullseye-openmpi bookworm-openmpi trixie-openmpi >/dev/null
python3 tests/bench/clusters.py \
  --containerspec target/release/containerspec \
  --rootfs-cache "$cache/rootfs" \
  --rounds "${2:-5}"
