#!/usr/bin/env bash
# Builds the real CUDA material the GPU end-to-end tests inspect, once, into a cache
# outside the repository, and prints the cache directory. Each thing is rebuilt only when
# its recipe changes.
#
#   tests/rigs/cuda.sh [NAME...]     build the named ones and what they need (default: all)
#   tests/rigs/cuda.sh --list        list the names and recipes
#
# Cache: $CONTAINERSPEC_TEST_CACHE (default /var/cache/containerspec-test)/cuda/
#   wheels/                  CUDA runtime wheels from PyPI (pinned versions)
#   hosts/drv-BRANCH/        host roots with Debian's NVIDIA driver user-space libraries
#                            (libcuda, libnvidia-ml, libnvidia-ptxjitcompiler), linked as
#                            nvidia-alternative links them, with their own ld.so.cache;
#                            .driver-version holds the driver version (e.g. 535.309.01)
#   base/                    bookworm root (libc6 only) every image starts from
#   images/NAME/             OCI bundles (config.json + rootfs/) whose process runs
#                            /usr/local/bin/cuda-check SONAME (built from cuda-check.c)
#
# Nothing here is installed on the machine: the driver packages are only unpacked.
# Needs: mmdebstrap, pip3, python3, gcc, ldconfig (glibc), flock.
set -euo pipefail

top="${CONTAINERSPEC_TEST_CACHE:-/var/cache/containerspec-test}/cuda"

here="$(cd "$(dirname "$0")" && pwd)"
check_src="$here/cuda-check.c"
check_sum="$(sha256sum "$check_src" | cut -c1-16)"
# The image layouts are written by this script, so its checksum is part of their recipe.
script_sum="$(sha256sum "$here/cuda.sh" | cut -c1-16)"
ldconfig_bin="$(command -v ldconfig || echo /sbin/ldconfig)"

# CUDA runtime wheels: key | distribution | version | library directory | soname | SDK version
wheels=(
  "11.8|nvidia-cuda-runtime-cu11|11.8.89|nvidia/cuda_runtime/lib|libcudart.so.11.0|11.8.0"
  "12.4|nvidia-cuda-runtime-cu12|12.4.127|nvidia/cuda_runtime/lib|libcudart.so.12|12.4.1"
  "12.9|nvidia-cuda-runtime-cu12|12.9.79|nvidia/cuda_runtime/lib|libcudart.so.12|12.9.1"
  "13.0|nvidia-cuda-runtime|13.0.48|nvidia/cu13/lib|libcudart.so.13|13.0.0"
)

# Driver roots: name | suite | packages | default release | layout version
# bullseye-security carries the 535 series; the suite itself has 470, so apt is told to
# prefer the suite. The layout version changes when build_host lays a root out anew.
drv_pkgs="libc6,libcuda1,libnvidia-ml1,libnvidia-ptxjitcompiler1,nvidia-smi"
hosts=(
  "drv-470|bullseye|$drv_pkgs|bullseye|3"
  "drv-535|bookworm|$drv_pkgs||3"
  "drv-550|trixie|$drv_pkgs||3"
)

base_recipe="base|bookworm|extract|libc6"

# Images: name | layout | wheel key
images=(
  "pip-11.8|pip|11.8"
  "pip-12.4|pip|12.4"
  "pip-12.9|pip|12.9"
  "pip-13.0|pip|13.0"
  "venv-12.9|venv|12.9"
  "conda-11.8|conda|11.8"
  "conda-12.9|conda|12.9"
  "ngc-12.4|ngc|12.4"
  "ngc-12.9|ngc|12.9"
  "ngc-12.4-compat|ngc-compat|12.4"
  "ngc-12.4-compat-ldpath|ngc-compat-ldpath|12.4"
  "unversioned-12|unversioned|12.9"
)
# The forward-compatibility libraries come from this driver root.
compat_host="drv-550"

say() { echo "cuda.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# up_to_date DIR RECIPE: DIR was built from RECIPE.
up_to_date() {
  [[ -f "$1/.containerspec-recipe" ]] && [[ "$(cat "$1/.containerspec-recipe")" == "$2" ]]
}

# finish TMP DEST RECIPE: stamp TMP and put it in place of DEST.
finish() {
  printf '%s' "$3" >"$1/.containerspec-recipe"
  rm -rf "$2"
  mv "$1" "$2"
}

# entry_of NAME LINE...: the line whose first field is NAME.
entry_of() {
  local name="$1" line
  shift
  for line in "$@"; do
    [[ "${line%%|*}" == "$name" ]] && { echo "$line"; return 0; }
  done
  return 1
}

wheel_of() { entry_of "$1" "${wheels[@]}" || die "unknown CUDA wheel '$1'"; }

wheels_recipe() { local IFS=';'; echo "wheels|${wheels[*]}"; }

build_wheels() {
  local dest="$top/wheels" recipe tmp w key dist ver libdir soname sdk
  recipe="$(wheels_recipe)"
  up_to_date "$dest" "$recipe" && return 0
  command -v pip3 >/dev/null || die "pip3 is not installed"
  say "downloading CUDA runtime wheels"
  tmp="$top/.wheels.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  for w in "${wheels[@]}"; do
    IFS='|' read -r key dist ver libdir soname sdk <<<"$w"
    pip3 download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
      --python-version 3.11 -d "$tmp" "$dist==$ver" >&2 \
      || die "pip3 download failed for $dist==$ver"
    compgen -G "$tmp/${dist//-/_}-$ver-*.whl" >/dev/null || die "no wheel for $dist==$ver in $tmp"
  done
  finish "$tmp" "$dest" "$recipe"
}

# wheel_file KEY: the downloaded wheel of that key.
wheel_file() {
  local key dist ver rest f
  IFS='|' read -r key dist ver rest <<<"$(wheel_of "$1")"
  for f in "$top/wheels/${dist//-/_}-$ver-"*.whl; do
    [[ -f "$f" ]] && { echo "$f"; return 0; }
  done
  die "wheel $dist==$ver is missing from $top/wheels"
}

host_of() { entry_of "$1" "${hosts[@]}"; }

# resolve ROOT PATH: follow symlinks as they resolve inside ROOT; prints the final path
# inside ROOT.
resolve() {
  local root="$1" p="$2" t n=0
  while [[ -L "$root$p" ]]; do
    t="$(readlink "$root$p")"
    if [[ "$t" == /* ]]; then p="$t"; else p="$(dirname "$p")/$t"; fi
    ((n++ < 40)) || return 1
  done
  echo "$p"
}

# cache_entries LD_SO_CACHE: "SONAME PATH" per entry of a glibc loader cache (the format
# ldconfig writes since glibc 2.32, optionally after an old-format part).
cache_entries() {
  python3 - "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
base = 0
if data.startswith(b"ld.so-1.7.0"):
    (n,) = struct.unpack_from("<I", data, 12)
    base = (16 + 12 * n + 7) & ~7
if data[base:base + 20] != b"glibc-ld.so.cache1.1":
    sys.exit("not a glibc-ld.so.cache1.1 file: " + sys.argv[1])
(nlibs,) = struct.unpack_from("<I", data, base + 20)
def string(off):
    off += base
    return data[off:data.index(b"\0", off)].decode()
for i in range(nlibs):
    _, key, value, _, _ = struct.unpack_from("<iIIIQ", data, base + 48 + 24 * i)
    print(string(key), string(value))
EOF
}

# ld_conf ROOT: make the loader configuration a Debian root has (libc-bin's ld.so.conf,
# libc6's multiarch directories).
ld_conf() {
  mkdir -p "$1/etc/ld.so.conf.d" "$1/var/cache/ldconfig"
  [[ -f "$1/etc/ld.so.conf" ]] || echo 'include /etc/ld.so.conf.d/*.conf' >"$1/etc/ld.so.conf"
  [[ -f "$1/etc/ld.so.conf.d/x86_64-linux-gnu.conf" ]] \
    || printf '# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' \
      >"$1/etc/ld.so.conf.d/x86_64-linux-gnu.conf"
}

build_host() {
  local recipe name suite pkgs release dest tmp
  recipe="$(host_of "$1")" || die "unknown host root '$1' (see --list)"
  IFS='|' read -r name suite pkgs release _ <<<"$recipe"
  dest="$top/hosts/$name"
  up_to_date "$dest" "$recipe" && return 0
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed"
  say "building host root $name ($suite: $pkgs)"
  mkdir -p "$top/hosts"
  tmp="$top/hosts/.$name.tmp"
  rm -rf "$tmp"
  local opts=(--variant=extract --components=main,contrib,non-free --include="$pkgs" --skip=check/empty)
  opts+=(--aptopt='Acquire::Check-Valid-Until "false"')
  [[ -n "$release" ]] && opts+=(--aptopt="APT::Default-Release \"$release\"")
  mmdebstrap "${opts[@]}" "$suite" "$tmp" >"$top/hosts/$name.log" 2>&1 \
    || { say "mmdebstrap failed for $name, see $top/hosts/$name.log"; tail -20 "$top/hosts/$name.log" >&2; exit 1; }

  # Packages of a merged-/usr suite (trixie) ship under /usr only; the /lib64 -> usr/lib64
  # links come from the bootstrap, which the extract variant skips. A real host has them.
  local d
  for d in bin sbin lib lib64; do
    [[ -e "$tmp/$d" || -L "$tmp/$d" || ! -d "$tmp/usr/$d" ]] || ln -s "usr/$d" "$tmp/$d"
  done

  # The links nvidia-alternative's trigger makes with update-alternatives: the master
  # /usr/lib/nvidia/nvidia and, per library, /usr/lib/<triplet>/<name> ->
  # /etc/alternatives/nvidia--<name>-<triplet> -> /usr/lib/<triplet>/nvidia/current/<name>.
  local lib=/usr/lib/x86_64-linux-gnu cur=/usr/lib/x86_64-linux-gnu/nvidia/current f n alt
  mkdir -p "$tmp/etc/alternatives"
  if [[ -d "$tmp/usr/lib/nvidia/current" ]]; then
    ln -sfn /usr/lib/nvidia/current "$tmp/etc/alternatives/nvidia"
    ln -sfn /etc/alternatives/nvidia "$tmp/usr/lib/nvidia/nvidia"
  fi
  for f in "$tmp$cur"/*; do
    n="${f##*/}"
    [[ "$n" =~ ^lib.*\.so\.[0-9]+$ || "$n" == libcuda.so ]] || continue
    alt="nvidia--$n-x86_64-linux-gnu"
    ln -sfn "$cur/$n" "$tmp/etc/alternatives/$alt"
    ln -sfn "/etc/alternatives/$alt" "$tmp$lib/$n"
  done

  # The driver's programs (nvidia-smi): /usr/bin/<name> -> /etc/alternatives/nvidia--<name>
  # -> /usr/lib/nvidia/current/<name>, as the same trigger links them.
  for f in "$tmp/usr/lib/nvidia/current"/*; do
    [[ -f "$f" && -x "$f" ]] || continue
    n="${f##*/}"
    mkdir -p "$tmp/usr/bin"
    ln -sfn "/usr/lib/nvidia/current/$n" "$tmp/etc/alternatives/nvidia--$n"
    ln -sfn "/etc/alternatives/nvidia--$n" "$tmp/usr/bin/$n"
  done

  ld_conf "$tmp"
  "$ldconfig_bin" -r "$tmp"
  local entries
  entries="$(cache_entries "$tmp/etc/ld.so.cache")"
  # (/lib/... on a merged-/usr root, where ldconfig walks /lib first.)
  grep -qxE "libcuda\.so\.1 (/usr)?/lib/x86_64-linux-gnu/libcuda\.so\.1" <<<"$entries" \
    || die "$name: its ld.so.cache does not map libcuda.so.1 to $lib/libcuda.so.1"
  local real version
  real="$(resolve "$tmp" "$lib/libcuda.so.1")" || die "$name: $lib/libcuda.so.1 loops"
  [[ -f "$tmp$real" && ! -L "$tmp$real" && "$real" == "$cur"/libcuda.so.*.* ]] \
    || die "$name: $lib/libcuda.so.1 resolves to $real, not a real libcuda.so.<version>"
  version="${real##*/libcuda.so.}"
  printf '%s\n' "$version" >"$tmp/.driver-version"
  say "$name: driver $version"
  finish "$tmp" "$dest" "$recipe"
}

build_base() {
  local dest="$top/base" tmp suite variant pkgs
  IFS='|' read -r _ suite variant pkgs <<<"$base_recipe"
  up_to_date "$dest" "$base_recipe" && return 0
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed"
  say "building image base ($suite: $pkgs)"
  mkdir -p "$top"
  tmp="$top/.base.tmp"
  rm -rf "$tmp"
  mmdebstrap --variant="$variant" --include="$pkgs" --skip=check/empty \
    --aptopt='Acquire::Check-Valid-Until "false"' "$suite" "$tmp" >"$top/base.log" 2>&1 \
    || { say "mmdebstrap failed for the base, see $top/base.log"; tail -20 "$top/base.log" >&2; exit 1; }
  ld_conf "$tmp"
  mkdir -p "$tmp/usr/local/bin" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/run" "$tmp/tmp"
  "$ldconfig_bin" -r "$tmp"
  finish "$tmp" "$dest" "$base_recipe"
}

image_of() { entry_of "$1" "${images[@]}"; }

# image_recipe NAME: the image line plus everything it is made from.
image_recipe() {
  local line layout key extra=""
  line="$(image_of "$1")" || die "unknown image '$1' (see --list)"
  IFS='|' read -r _ layout key <<<"$line"
  if [[ "$layout" == ngc-compat* ]]; then
    extra="|compat:$compat_host:$(cat "$top/hosts/$compat_host/.driver-version" 2>/dev/null || echo unbuilt)"
  fi
  echo "$line|$(wheel_of "$key")|check:$check_sum|layout:$script_sum|$base_recipe$extra"
}

# extract_wheel KEY DIR: unpack the whole wheel into DIR as pip installs it.
extract_wheel() {
  local whl key dist ver rest
  whl="$(wheel_file "$1")"
  IFS='|' read -r key dist ver rest <<<"$(wheel_of "$1")"
  mkdir -p "$2"
  python3 -m zipfile -e "$whl" "$2"
  echo pip >"$2/${dist//-/_}-$ver.dist-info/INSTALLER"
  : >"$2/${dist//-/_}-$ver.dist-info/REQUESTED"
}

# wheel_lib KEY: the runtime library file inside the wheel.
wheel_lib() {
  local key dist ver libdir soname sdk
  IFS='|' read -r key dist ver libdir soname sdk <<<"$(wheel_of "$1")"
  echo "$libdir/$soname"
}

# compile ROOTFS [RUNPATH]
compile_check() {
  local out="$1/usr/local/bin/cuda-check"
  mkdir -p "$1/usr/local/bin"
  # -rdynamic exports the program's dlclose to the runtime (see cuda-check.c).
  if [[ -n "${2:-}" ]]; then
    gcc -O2 -rdynamic -o "$out" "$check_src" -ldl -Wl,-rpath,"$2"
  else
    gcc -O2 -rdynamic -o "$out" "$check_src" -ldl
  fi
}

# write_config BUNDLE SONAME ENV...
write_config() {
  python3 - "$@" <<'EOF'
import json, sys
bundle, soname, env = sys.argv[1], sys.argv[2], sys.argv[3:]
config = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {
        "cwd": "/",
        "args": ["/usr/local/bin/cuda-check", soname],
        "env": env,
        "user": {"uid": 0, "gid": 0},
    },
    "annotations": {"org.supercontainers.inject": "gpu"},
}
with open(bundle + "/config.json", "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
EOF
}

# ngc_layout ROOTFS KEY: the CUDA runtime as NVIDIA's cuda images (cuda-cudart package)
# lay it out; prints the environment's CUDA variables.
ngc_layout() {
  local root="$1" key dist ver libdir soname sdk xy tl
  IFS='|' read -r key dist ver libdir soname sdk <<<"$(wheel_of "$2")"
  xy="${sdk%.*}"
  tl="$root/usr/local/cuda-$xy/targets/x86_64-linux/lib"
  mkdir -p "$tl" "$root/etc/ld.so.conf.d"
  cp "$3/$libdir/$soname" "$tl/libcudart.so.$ver"
  ln -s "libcudart.so.$ver" "$tl/$soname"
  ln -s targets/x86_64-linux/lib "$root/usr/local/cuda-$xy/lib64"
  ln -s "cuda-$xy" "$root/usr/local/cuda"
  cat >"$root/usr/local/cuda-$xy/version.json" <<EOF
{
   "cuda" : {
      "name" : "CUDA SDK",
      "version" : "$sdk"
   },
   "cuda_cudart" : {
      "name" : "CUDA Runtime (cudart)",
      "version" : "$ver"
   }
}
EOF
  echo /usr/local/cuda/targets/x86_64-linux/lib >"$root/etc/ld.so.conf.d/000_cuda.conf"
  printf '/usr/local/nvidia/lib\n/usr/local/nvidia/lib64\n' >"$root/etc/ld.so.conf.d/nvidia.conf"
}

build_image() {
  local name="$1" recipe line layout key dist ver libdir soname sdk dest tmp root unpack
  recipe="$(image_recipe "$name")"
  dest="$top/images/$name"
  up_to_date "$dest" "$recipe" && return 0
  line="$(image_of "$name")"
  IFS='|' read -r _ layout key <<<"$line"
  IFS='|' read -r key dist ver libdir soname sdk <<<"$(wheel_of "$key")"
  say "building image $name"
  mkdir -p "$top/images"
  tmp="$top/images/.$name.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp -a "$top/base" "$tmp/rootfs"
  rm -f "$tmp/rootfs/.containerspec-recipe"
  root="$tmp/rootfs"
  unpack="$tmp/.wheel"
  extract_wheel "$key" "$unpack"

  local path=/usr/local/bin:/usr/bin:/bin
  local env=()
  case "$layout" in
    pip)
      local site=/usr/local/lib/python3.11/dist-packages
      mkdir -p "$root$site"
      cp -a "$unpack/." "$root$site/"
      compile_check "$root" "$site/$libdir"
      env=("PATH=$path")
      ;;
    venv)
      local venv=/opt/venv site=/opt/venv/lib/python3.11/site-packages
      mkdir -p "$root$site" "$root$venv/bin" "$root$venv/include"
      cp -a "$unpack/." "$root$site/"
      ln -s lib "$root$venv/lib64"
      ln -s /usr/bin/python3 "$root$venv/bin/python3"
      ln -s python3 "$root$venv/bin/python"
      ln -s python3 "$root$venv/bin/python3.11"
      cat >"$root$venv/pyvenv.cfg" <<EOF
home = /usr/bin
include-system-site-packages = false
version = 3.11.2
executable = /usr/bin/python3.11
command = /usr/bin/python3 -m venv $venv
EOF
      compile_check "$root" "$site/$libdir"
      env=("PATH=$venv/bin:$path" "VIRTUAL_ENV=$venv")
      ;;
    conda)
      local conda=/opt/conda pkg build channel
      mkdir -p "$root$conda/lib" "$root$conda/bin" "$root$conda/conda-meta"
      cp "$unpack/$libdir/$soname" "$root$conda/lib/libcudart.so.$ver"
      ln -s "libcudart.so.$ver" "$root$conda/lib/$soname"
      if [[ "$key" == 11.* ]]; then
        # CUDA 11 came in one conda package, cudatoolkit, named after the SDK version.
        pkg=cudatoolkit build=h6a678d5_0 channel=pkgs/main
        python3 - "$root$conda/conda-meta" "$pkg" "$sdk" "$build" "$channel" "lib/$soname" "lib/libcudart.so.$ver" <<'EOF'
import json, sys
d, name, version, build, channel, *files = sys.argv[1:]
meta = {"build": build, "build_number": 0, "channel": channel, "depends": [],
        "files": files, "fn": f"{name}-{version}-{build}.conda", "license": "NVIDIA End User License Agreement",
        "name": name, "subdir": "linux-64", "version": version}
json.dump(meta, open(f"{d}/{name}-{version}-{build}.json", "w"), indent=2)
EOF
      else
        pkg=cuda-cudart build=0 channel=nvidia
        python3 - "$root$conda/conda-meta" "$pkg" "$ver" "$build" "$channel" "lib/$soname" "lib/libcudart.so.$ver" <<'EOF'
import json, sys
d, name, version, build, channel, *files = sys.argv[1:]
meta = {"build": build, "build_number": 0, "channel": channel, "depends": [],
        "files": files, "fn": f"{name}-{version}-{build}.conda", "license": "LicenseRef-NVIDIA-End-User-License-Agreement",
        "name": name, "subdir": "linux-64", "version": version}
json.dump(meta, open(f"{d}/{name}-{version}-{build}.json", "w"), indent=2)
EOF
      fi
      echo "==> 2025-05-12 21:48:10 <==" >"$root$conda/conda-meta/history"
      compile_check "$root" "$conda/lib"
      env=("PATH=$conda/bin:$path" "CONDA_PREFIX=$conda")
      ;;
    ngc | ngc-compat | ngc-compat-ldpath)
      local xy="${sdk%.*}" ldpath=/usr/local/nvidia/lib:/usr/local/nvidia/lib64
      ngc_layout "$root" "$key" "$unpack"
      if [[ "$layout" != ngc ]]; then
        # NVIDIA's cuda-compat package: a newer driver's libcuda beside the toolkit, not
        # in the loader cache; used only when LD_LIBRARY_PATH names it.
        local drv="$top/hosts/$compat_host" dv compat="$root/usr/local/cuda-$xy/compat"
        dv="$(cat "$drv/.driver-version")"
        mkdir -p "$compat"
        cp "$drv/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.$dv" "$compat/"
        cp "$drv/usr/lib/x86_64-linux-gnu/nvidia/current/libnvidia-ptxjitcompiler.so.$dv" "$compat/"
        ln -s "libcuda.so.$dv" "$compat/libcuda.so.1"
        ln -s libcuda.so.1 "$compat/libcuda.so"
        ln -s "libnvidia-ptxjitcompiler.so.$dv" "$compat/libnvidia-ptxjitcompiler.so.1"
        [[ "$layout" == ngc-compat-ldpath ]] && ldpath="/usr/local/cuda/compat:$ldpath"
      fi
      "$ldconfig_bin" -r "$root"
      compile_check "$root"
      env=("PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        "NVARCH=x86_64"
        "NVIDIA_REQUIRE_CUDA=cuda>=$xy brand=tesla,driver>=470,driver<471 brand=tesla,driver>=535,driver<536"
        "NV_CUDA_CUDART_VERSION=$ver-1"
        "CUDA_VERSION=$sdk"
        "LD_LIBRARY_PATH=$ldpath"
        "NVIDIA_VISIBLE_DEVICES=all"
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility")
      ;;
    unversioned)
      mkdir -p "$root/opt/app/lib"
      cp "$unpack/$libdir/$soname" "$root/opt/app/lib/$soname"
      compile_check "$root" /opt/app/lib
      env=("PATH=$path")
      ;;
    *) die "unknown layout $layout" ;;
  esac
  rm -rf "$unpack"
  write_config "$tmp" "$soname" "${env[@]}"
  finish "$tmp" "$dest" "$recipe"
}

# build NAME: build NAME after what it is made from.
build() {
  local line layout
  if [[ "$1" == wheels ]]; then
    build_wheels
  elif [[ "$1" == base ]]; then
    build_base
  elif host_of "$1" >/dev/null; then
    build_host "$1"
  elif line="$(image_of "$1")"; then
    IFS='|' read -r _ layout _ <<<"$line"
    build_wheels
    build_base
    [[ "$layout" == ngc-compat* ]] && build_host "$compat_host"
    build_image "$1"
  else
    die "unknown name '$1' (see --list)"
  fi
}

if [[ "${1:-}" == "--list" ]]; then
  wheels_recipe
  printf '%s\n' "${hosts[@]}" "$base_recipe"
  for i in "${images[@]}"; do image_recipe "${i%%|*}"; done
  exit 0
fi
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  names=(wheels)
  for h in "${hosts[@]}"; do names+=("${h%%|*}"); done
  names+=(base)
  for i in "${images[@]}"; do names+=("${i%%|*}"); done
fi
mkdir -p "$top"
# One build at a time per cache (test runners may start several).
exec 9>"$top/.lock"
flock 9
for n in "${names[@]}"; do build "$n"; done
echo "$top"
