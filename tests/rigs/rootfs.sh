#!/usr/bin/env bash
# Builds the real Debian root filesystems the end-to-end tests inspect, once, into a
# cache outside the repository, and prints the cache directory. A rootfs is rebuilt only
# when its recipe (suite, architecture, variant, packages) changes.
#
#   tests/rigs/rootfs.sh [NAME...]     build the named ones (default: all)
#   tests/rigs/rootfs.sh --list        list the names and recipes
#
# Cache: $CONTAINERSPEC_TEST_CACHE (default /var/cache/containerspec-test)/rootfs/NAME
set -euo pipefail

cache="${CONTAINERSPEC_TEST_CACHE:-/var/cache/containerspec-test}/rootfs"

here="$(cd "$(dirname "$0")" && pwd)"
# The MPI roots also hold /opt/containerspec-test/mpi-version, built from this source
# with the root's own mpicc; its checksum is part of their recipe.
mpi_prog="$here/mpi-version.c"
mpi_sum="$(sha256sum "$mpi_prog" | cut -c1-16)"

# name | suite | arch | variant | packages | extra
recipes=(
  "bullseye-mpich|bullseye|amd64|apt|mpich,libmpich-dev,gcc|mpi-version:$mpi_sum"
  "bookworm-mpich|bookworm|amd64|apt|mpich,libmpich-dev,gcc|mpi-version:$mpi_sum"
  "trixie-mpich|trixie|amd64|apt|mpich,libmpich-dev,gcc|mpi-version:$mpi_sum"
  "bullseye-openmpi|bullseye|amd64|apt|openmpi-bin,libopenmpi-dev,gcc|mpi-version:$mpi_sum"
  "bookworm-openmpi|bookworm|amd64|apt|openmpi-bin,libopenmpi-dev,gcc|mpi-version:$mpi_sum"
  "trixie-openmpi|trixie|amd64|apt|openmpi-bin,libopenmpi-dev,gcc|mpi-version:$mpi_sum"
  "bookworm-arm64|bookworm|arm64|extract|libc6,libmpich12,coreutils|"
)

recipe_of() {
  local r
  for r in "${recipes[@]}"; do
    [[ "${r%%|*}" == "$1" ]] && { echo "$r"; return 0; }
  done
  echo "rootfs.sh: unknown rootfs '$1' (see --list)" >&2
  return 1
}

build() {
  local recipe name suite arch variant pkgs dest tmp
  recipe=$(recipe_of "$1")
  IFS='|' read -r name suite arch variant pkgs extra <<<"$recipe"
  dest="$cache/$name"
  if [[ -f "$dest/.containerspec-recipe" ]] && [[ "$(cat "$dest/.containerspec-recipe")" == "$recipe" ]]; then
    return 0
  fi
  command -v mmdebstrap >/dev/null || { echo "rootfs.sh: mmdebstrap is not installed" >&2; return 1; }
  echo "rootfs.sh: building $name ($suite/$arch: $pkgs)" >&2
  mkdir -p "$cache"
  tmp="$cache/.$name.tmp"
  rm -rf "$tmp" "$dest"
  local opts=(--variant="$variant" --arch="$arch" --include="$pkgs" --skip=check/empty)
  # sid/trixie snapshots can carry expired Release files; the content is what matters here.
  opts+=(--aptopt='Acquire::Check-Valid-Until "false"')
  if [[ "$extra" == mpi-version:* ]]; then
    opts+=(--customize-hook='mkdir -p "$1/opt/containerspec-test"')
    opts+=(--customize-hook="copy-in $mpi_prog /opt/containerspec-test")
    opts+=(--customize-hook='chroot "$1" mpicc -O2 -o /opt/containerspec-test/mpi-version /opt/containerspec-test/mpi-version.c')
  fi
  mmdebstrap "${opts[@]}" "$suite" "$tmp" >"$cache/$name.log" 2>&1 \
    || { echo "rootfs.sh: mmdebstrap failed for $name, see $cache/$name.log" >&2; tail -20 "$cache/$name.log" >&2; return 1; }
  printf '%s' "$recipe" >"$tmp/.containerspec-recipe"
  mv "$tmp" "$dest"
}

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${recipes[@]}"
  exit 0
fi
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for r in "${recipes[@]}"; do names+=("${r%%|*}"); done
fi
for n in "${names[@]}"; do build "$n"; done
echo "$cache"
