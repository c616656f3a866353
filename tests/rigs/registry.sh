#!/usr/bin/env bash
# Builds the small real OCI images the registry tests push to registries they start on
# loopback (tests/integration/registry_rig.rs), once, into a cache outside the
# repository. Rebuilt only when this script or a root filesystem it reads changes.
#
#   tests/rigs/registry.sh           build what is missing (quiet; one summary line)
#   tests/rigs/registry.sh --list    print the recipe
#
# Cache: $CONTAINERSPEC_TEST_CACHE (default /var/cache/containerspec-test)/registry/
#   layouts/base/     OCI image layout, tags bullseye, bookworm, trixie (linux/amd64) and
#                     bookworm-arm64 (linux/arm64/v8)
#   layouts/multi/    OCI image layout, tag bookworm: an image index of base:bookworm and
#                     base:bookworm-arm64 (a multi-platform image)
#
# Each image has one gzip layer holding only what decides whether a base image runs on a
# host: the dynamic loader and libc exactly as the root lays them out (every symlink on
# the way, the directories they sit in, usrmerge links included), /etc/os-release (and
# the file it links to) and /etc/debian_version, taken with tar from the real roots
# tests/rigs/rootfs.sh builds, so owners, modes and links are real. Each image's config
# names its platform and carries org.opencontainers.image.version=<suite>.
#
# Needs: umoci, skopeo, python3, tar, and the roots bullseye-mpich, bookworm-mpich,
# trixie-mpich, bookworm-arm64 (tests/rigs/rootfs.sh).
set -euo pipefail

cache="${CONTAINERSPEC_TEST_CACHE:-/var/cache/containerspec-test}"
top="$cache/registry"
roots="$cache/rootfs"
here="$(cd "$(dirname "$0")" && pwd)"
script_sum="$(sha256sum "$here/registry.sh" | cut -c1-16)"

# Images of layout "base": tag | root | release root | suite | architecture | variant |
# multiarch triplet | loader (PT_INTERP). The release root is where os-release and
# debian_version come from: the arm64 root is an `extract` bootstrap of libc6 and a few
# libraries, without base-files, so its release files come from the amd64 root of the
# same suite (base-files ships the same text on every architecture).
images=(
  "bullseye|bullseye-mpich|bullseye-mpich|bullseye|amd64||x86_64-linux-gnu|/lib64/ld-linux-x86-64.so.2"
  "bookworm|bookworm-mpich|bookworm-mpich|bookworm|amd64||x86_64-linux-gnu|/lib64/ld-linux-x86-64.so.2"
  "trixie|trixie-mpich|trixie-mpich|trixie|amd64||x86_64-linux-gnu|/lib64/ld-linux-x86-64.so.2"
  "bookworm-arm64|bookworm-arm64|bookworm-mpich|bookworm|arm64|v8|aarch64-linux-gnu|/lib/ld-linux-aarch64.so.1"
)
# The multi-platform image: layout:tag, then the base tags it indexes.
multi="multi:bookworm|bookworm bookworm-arm64"

# Image times are fixed so that a rebuild from the same roots gives the same digests.
created="2024-01-01T00:00:00Z"

say() { echo "registry.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# recipe: this script and the recipes of the roots it reads.
recipe() {
  local r out="layouts|script:$script_sum"
  for r in bullseye-mpich bookworm-mpich trixie-mpich bookworm-arm64; do
    out+="|$r:$(cat "$roots/$r/.containerspec-recipe" 2>/dev/null || echo unbuilt)"
  done
  echo "$out"
}

if [[ "${1:-}" == "--list" ]]; then
  recipe
  printf '%s\n' "${images[@]}" "$multi"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: registry.sh [--list]"

dest="$top/layouts"
want="$(recipe)"
if [[ -f "$dest/.containerspec-recipe" && "$(cat "$dest/.containerspec-recipe")" == "$want" ]]; then
  say "up to date: $dest"
  exit 0
fi

for tool in umoci skopeo python3 tar; do
  command -v "$tool" >/dev/null || die "$tool is not installed (tests/rigs/setup.sh installs it)"
done
for r in bullseye-mpich bookworm-mpich trixie-mpich bookworm-arm64; do
  [[ -f "$roots/$r/.containerspec-recipe" ]] || die "root $roots/$r is not built: run tests/rigs/rootfs.sh $r"
done

mkdir -p "$top"
# One build at a time per cache (test runners may start several).
exec 9>"$top/.lock"
flock 9
# Another run may have finished while this one waited.
if [[ -f "$dest/.containerspec-recipe" && "$(cat "$dest/.containerspec-recipe")" == "$want" ]]; then
  exit 0
fi

start=$SECONDS
tmp="$top/.layouts.tmp"
work="$top/.work.tmp"
rm -rf "$tmp" "$work"
mkdir -p "$tmp" "$work"
trap 'say "failed (line $LINENO); partial output left in $tmp and $work"' ERR

# closure ROOT PATH...: every path (relative to ROOT) that resolving each PATH inside ROOT
# passes through: directories, each symlink of a chain (absolute targets resolve inside
# ROOT), and the final file; sorted, so a directory comes before what it holds.
closure() {
  python3 - "$@" <<'EOF'
import os, sys
root, paths = sys.argv[1], sys.argv[2:]
seen = set()
for path in paths:
    todo = [c for c in path.split("/") if c]
    cur, hops = [], 0
    while todo:
        c = todo.pop(0)
        if c == ".":
            continue
        if c == "..":
            if cur:
                cur.pop()
            continue
        rel = "/".join(cur + [c])
        full = os.path.join(root, rel)
        if os.path.islink(full):
            seen.add(rel)
            hops += 1
            if hops > 40:
                sys.exit(f"symlink loop resolving {path} in {root}")
            target = os.readlink(full)
            if target.startswith("/"):
                cur = []
            todo = [t for t in target.split("/") if t] + todo
        elif os.path.lexists(full):
            seen.add(rel)
            cur.append(c)
        else:
            sys.exit(f"{path} does not resolve in {root}: {full} is missing")
for rel in sorted(seen):
    print(rel)
EOF
}

# layer_tar OUT ROOT RELEASE_ROOT TRIPLET LOADER: the one layer of a base image.
layer_tar() {
  local out="$1" root="$2" release_root="$3" triplet="$4" loader="$5" soname
  soname="${loader##*/}"
  closure "$root" "$loader" "/lib/$triplet/$soname" "/lib/$triplet/libc.so.6" \
    >"$work/files" || die "cannot lay out the loader and libc of $root"
  closure "$release_root" /etc/os-release /etc/debian_version \
    >"$work/release-files" || die "cannot find os-release in $release_root"
  if [[ "$release_root" != "$root" ]]; then
    # Directories on the way (etc, usr, usr/lib) come from the image's own root.
    local rel
    while read -r rel; do
      if [[ -d "$release_root/$rel" && ! -L "$release_root/$rel" && -d "$root/$rel" && ! -L "$root/$rel" ]]; then
        echo "$rel" >>"$work/files"
      fi
    done <"$work/release-files"
    LC_ALL=C sort -u -o "$work/files" "$work/files"
    grep -vxF -f "$work/files" "$work/release-files" >"$work/release-only" || true
  else
    cat "$work/release-files" >>"$work/files"
    LC_ALL=C sort -u -o "$work/files" "$work/files"
    : >"$work/release-only"
  fi
  tar --create --file="$out" --no-recursion --numeric-owner --format=gnu \
    --directory="$root" --verbatim-files-from --files-from="$work/files" \
    || die "tar failed in $root"
  if [[ -s "$work/release-only" ]]; then
    tar --append --file="$out" --no-recursion --numeric-owner --format=gnu \
      --directory="$release_root" --verbatim-files-from --files-from="$work/release-only" \
      || die "tar failed in $release_root"
  fi
}

# build_base TAG ROOT RELEASE_ROOT SUITE ARCH TRIPLET LOADER
build_base() {
  local tag="$1" root="$roots/$2" release_root="$roots/$3" suite="$4" arch="$5"
  local triplet="$6" loader="$7" image="$tmp/base:$1"
  layer_tar "$work/$tag.tar" "$root" "$release_root" "$triplet" "$loader"
  umoci new --image "$image" || die "umoci new failed for $image"
  umoci config --image "$image" --no-history --created "$created" \
    --architecture "$arch" --os linux --config.label "org.opencontainers.image.version=$suite" \
    || die "umoci config failed for $image"
  umoci raw add-layer --image "$image" --history.created "$created" \
    --history.created_by "tar of the loader, libc and os-release of the $suite root" \
    "$work/$tag.tar" || die "umoci raw add-layer failed for $image"
}

umoci init --layout "$tmp/base" || die "umoci init failed for $tmp/base"
for line in "${images[@]}"; do
  IFS='|' read -r tag root release_root suite arch _ triplet loader <<<"$line"
  build_base "$tag" "$root" "$release_root" "$suite" "$arch" "$triplet" "$loader"
done
umoci gc --layout "$tmp/base" || die "umoci gc failed for $tmp/base"

# The multi-platform image: umoci makes one image per tag, so the index is written here,
# with the platforms in its manifest descriptors, and the manifests' blobs copied over.
IFS='|' read -r multi_ref multi_tags <<<"$multi"
platforms=()
for t in $multi_tags; do
  for line in "${images[@]}"; do
    IFS='|' read -r tag _ _ _ arch variant _ _ <<<"$line"
    [[ "$tag" == "$t" ]] && platforms+=("$t|$arch|$variant")
  done
done
python3 - "$tmp/base" "$tmp/${multi_ref%%:*}" "${multi_ref#*:}" "${platforms[@]}" <<'EOF' \
  || die "cannot write the image index of $multi_ref in $tmp/${multi_ref%%:*}"
import hashlib, json, os, shutil, sys
src, dst, tag, platforms = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
INDEX = "application/vnd.oci.image.index.v1+json"
REF = "org.opencontainers.image.ref.name"

def blob(layout, digest):
    algo, hexa = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexa)

def put(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob(layout, digest), "wb") as f:
        f.write(data)
    return digest

os.makedirs(os.path.join(dst, "blobs", "sha256"))
shutil.copy(os.path.join(src, "oci-layout"), os.path.join(dst, "oci-layout"))
tags = {m["annotations"][REF]: m for m in json.load(open(os.path.join(src, "index.json")))["manifests"]}
manifests = []
for p in platforms:
    name, arch, variant = p.split("|")
    desc = tags[name]
    manifest = json.load(open(blob(src, desc["digest"])))
    config = json.load(open(blob(src, manifest["config"]["digest"])))
    if (config["architecture"], config["os"]) != (arch, "linux"):
        sys.exit(f"base:{name} says {config['os']}/{config['architecture']}, not linux/{arch}")
    for d in [desc["digest"], manifest["config"]["digest"]] + [l["digest"] for l in manifest["layers"]]:
        shutil.copy(blob(src, d), blob(dst, d))
    platform = {"architecture": arch, "os": "linux"}
    if variant:
        platform["variant"] = variant
    manifests.append({"mediaType": desc["mediaType"], "digest": desc["digest"],
                      "size": desc["size"], "platform": platform})
index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests},
                   indent=2).encode() + b"\n"
digest = put(dst, index)
top = {"schemaVersion": 2, "mediaType": INDEX,
       "manifests": [{"mediaType": INDEX, "digest": digest, "size": len(index),
                      "annotations": {REF: tag}}]}
with open(os.path.join(dst, "index.json"), "w") as f:
    json.dump(top, f)
EOF

# skopeo must take every image as it is, the index with all its platforms: a local copy
# reads and checks every blob against its digest.
for line in "${images[@]}"; do
  ref="base:${line%%|*}"
  skopeo copy --quiet "oci:$tmp/$ref" "oci:$work/check:${ref#*:}" >/dev/null \
    || die "skopeo does not accept $tmp/$ref"
done
skopeo copy --quiet --all "oci:$tmp/$multi_ref" "oci:$work/check:multi" >/dev/null \
  || die "skopeo does not accept $tmp/$multi_ref"

printf '%s' "$want" >"$tmp/.containerspec-recipe"
chmod -R a+rX "$tmp"
rm -rf "$dest" "$work"
mv "$tmp" "$dest"
trap - ERR
say "built $(du -sh "$dest" | cut -f1) of layouts in $dest in $((SECONDS - start)) s: $(printf 'base:%s ' "${images[@]%%|*}")$multi_ref"
