#!/usr/bin/env bash
# Runs real Apptainer 1.4 for the end-to-end tests on a Debian 12 machine, where
# Apptainer is not packaged. Apptainer comes from a Debian sid root (it needs glibc >=
# 2.38, so it cannot run on the machine itself), built once into a cache outside the
# repository and rebuilt only when its recipe changes. Commands run inside that root as
# an unprivileged user (uid/gid 1000, `tester`): as root, apptainer fails on this kind of
# VM because it lacks a capability apptainer's root mode insists on. Needs root (mount
# namespaces, pivot_root, mmdebstrap).
#
#   tests/rigs/apptainer.sh build
#       build (or validate) the cached sid root and print its path
#   tests/rigs/apptainer.sh run [--as-root] [--bind HOSTDIR:ROOTDIR[:ro]]... -- CMD [ARG...]
#       run CMD inside the sid root as `tester` (HOME=/home/tester, a fresh tmpfs), with
#       each HOSTDIR bind-mounted at ROOTDIR (read-only with `:ro`); prints CMD's stdout
#       and stderr and exits with CMD's status. --as-root runs CMD as root instead (for
#       preparation such as mksquashfs; apptainer itself fails as root here)
#   tests/rigs/apptainer.sh sif NAME
#       build (or validate) a SIF image of the cached rootfs NAME (see rootfs.sh --list;
#       built first if missing) and print the SIF's path
#
# Examples (HOSTDIR must be writable by uid 1000 where apptainer writes to it):
#   tests/rigs/apptainer.sh run -- apptainer --version
#   tests/rigs/apptainer.sh run --bind "$(tests/rigs/apptainer.sh sif bookworm-mpich)":/img.sif:ro \
#       -- apptainer exec /img.sif /opt/containerspec-test/mpi-version
#   tests/rigs/apptainer.sh run --bind /srv/rootfs:/rootfs:ro --bind /tmp/out:/scratch \
#       -- apptainer exec --bind /scratch:/mnt /rootfs ls /mnt     # a sandbox directory
#   tests/rigs/apptainer.sh run --bind /srv/x.sif:/x.sif:ro --bind /tmp/out:/scratch \
#       -- apptainer build --sandbox /scratch/sb /x.sif          # SIF -> sandbox works
# Each ROOTDIR is created (empty) in the cached sid root if missing, and stays there.
#
# Building a SIF from a rootfs directory (verified here with apptainer 1.4.5):
#   - `apptainer build /scratch/x.sif /rootfs` as the unprivileged user FAILS on a real
#     root-owned rootfs ("copy Failed: operation not permitted": apptainer copies the
#     directory first and cannot chown to root), and with --fakeroot too ("failed to
#     Lchown ... for UID 65534": host root is not mapped into its user namespace).
#   - What works, and what `sif NAME` does: mksquashfs as root (sid's, via `run --as-root`;
#     ownership, modes and xattrs kept as they are), then `apptainer build` from that
#     squashfs as the user (it unpacks it, adds /.singularity.d and packs a SIF with every
#     file owned by root, as an unprivileged build does):
#       run --as-root --bind ROOTFS:/rootfs:ro --bind WORK:/scratch -- \
#           mksquashfs /rootfs /scratch/rootfs.sqfs -noappend -no-progress -quiet
#       run --bind WORK:/scratch -- apptainer build /scratch/x.sif /scratch/rootfs.sqfs
#     (Wrapping the squashfs with `apptainer sif new/add` is ~40 s faster, but gives an
#     image no `apptainer build` would: no /.singularity.d.)
#   - A sandbox needs no build: `apptainer exec /rootfs CMD` runs the directory itself.
#   - Without squashfuse (not in the recipe), `apptainer exec X.sif` extracts the image
#     to a temporary sandbox first: about 2 s per exec for a 200 MB image.
#
# Cache: $CONTAINERSPEC_TEST_CACHE (default /var/cache/containerspec-test)/apptainer/
#   sid-root/              the sid root (.containerspec-recipe: its recipe stamp)
#   sif/NAME.sif           SIF of rootfs/NAME (NAME.sif.recipe: the stamp it was built from)
set -euo pipefail

cache_top="${CONTAINERSPEC_TEST_CACHE:-/var/cache/containerspec-test}"
cache="$cache_top/apptainer"
root="$cache/sid-root"
here="$(cd "$(dirname "$0")" && pwd)"

test_uid=1000
test_gid=1000
test_user=tester
test_home=/home/tester

# Bump the trailing version when the customisation below changes.
# `mount` (mount/umount) is not essential in sid; it is needed inside the root to detach
# the host's root after pivot_root.
# `mpich` makes the sid root a host with an MPI installation to inject.
recipe="apptainer|sid|amd64|apt|apptainer,squashfs-tools,mount,mpich|user:$test_user:$test_uid:$test_gid|v2"

die() { echo "apptainer.sh: $*" >&2; exit 1; }

usage() {
  sed -n '/^#   tests\/rigs\/apptainer.sh build/,/^#       built first/p' "$0" | sed 's/^# \{0,1\}//'
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "needs root (mount namespaces, pivot_root, mmdebstrap); run it as root"
}

build_root() {
  if [[ -f "$root/.containerspec-recipe" ]] && [[ "$(cat "$root/.containerspec-recipe")" == "$recipe" ]]; then
    return 0
  fi
  need_root
  # Tests may ask for the root concurrently: one builds, the others wait, then re-check.
  mkdir -p "$cache"
  exec 8>"$cache/.sid-root.lock"
  flock 8
  if [[ -f "$root/.containerspec-recipe" ]] && [[ "$(cat "$root/.containerspec-recipe")" == "$recipe" ]]; then
    exec 8>&-
    return 0
  fi
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"
  echo "apptainer.sh: building the sid root with apptainer (about 15-30 s)" >&2
  mkdir -p "$cache"
  local tmp="$cache/.sid-root.tmp" log="$cache/sid-root.log"
  rm -rf "$tmp" "$root"
  # sid's Release file in the archive snapshot is expired; the content is what matters.
  if ! mmdebstrap --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
      --include=apptainer,squashfs-tools,mount,mpich sid "$tmp" >"$log" 2>&1; then
    echo "apptainer.sh: mmdebstrap failed, see $log" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  [[ -x "$tmp/usr/bin/apptainer" ]] || die "the sid root has no /usr/bin/apptainer, see $log"
  local t
  for t in setpriv mount umount env; do
    [[ -x "$tmp/usr/bin/$t" || -x "$tmp/bin/$t" ]] || die "the sid root has no $t, see $log"
  done
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
  # apptainer bind-mounts /etc/localtime into containers: it must be a regular file.
  rm -f "$tmp/etc/localtime"
  if [[ -f "$tmp/usr/share/zoneinfo/Etc/UTC" ]]; then
    cp -L "$tmp/usr/share/zoneinfo/Etc/UTC" "$tmp/etc/localtime"
  elif [[ -e /etc/localtime ]]; then
    cp -L /etc/localtime "$tmp/etc/localtime"
  else
    : >"$tmp/etc/localtime"
  fi
  echo "$test_user:x:$test_uid:$test_gid:containerspec tests:$test_home:/bin/bash" >>"$tmp/etc/passwd"
  echo "$test_user:x:$test_gid:" >>"$tmp/etc/group"
  mkdir -p "$tmp$test_home"
  chown "$test_uid:$test_gid" "$tmp$test_home"
  chmod 0755 "$tmp$test_home"
  printf '%s' "$recipe" >"$tmp/.containerspec-recipe"
  mv "$tmp" "$root"
  exec 8>&-
}

# run: parse the options, then re-enter this script in a private mount namespace.
run_cmd() {
  need_root
  local binds=() as_root=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --as-root) as_root=1; shift ;;
      --bind) [[ $# -ge 2 ]] || die "--bind needs HOSTDIR:ROOTDIR[:ro]"; binds+=("$2"); shift 2 ;;
      --bind=*) binds+=("${1#--bind=}"); shift ;;
      --) shift; break ;;
      *) die "run: unexpected '$1' (usage: run [--as-root] [--bind HOSTDIR:ROOTDIR[:ro]]... -- CMD [ARG...])" ;;
    esac
  done
  [[ $# -ge 1 ]] || die "run: no command given (usage: run [--as-root] [--bind HOSTDIR:ROOTDIR[:ro]]... -- CMD [ARG...])"
  local b host dst
  for b in ${binds[@]+"${binds[@]}"}; do
    host="${b%%:*}"; dst="${b#*:}"; dst="${dst%:ro}"
    [[ "$b" == *:* && -n "$host" && "$dst" == /* ]] || die "--bind '$b': expected HOSTDIR:ROOTDIR[:ro] with an absolute ROOTDIR"
    [[ -e "$host" ]] || die "--bind '$b': $host does not exist"
  done
  build_root
  command -v unshare >/dev/null || die "unshare (util-linux) is not installed"
  # Binds travel as one newline-separated variable; the command as the arguments.
  local IFS=$'\n'
  CONTAINERSPEC_APPTAINER_BINDS="${binds[*]+"${binds[*]}"}" CONTAINERSPEC_APPTAINER_AS_ROOT="$as_root" \
    exec unshare -m "$0" __inside "$@"
}

# __inside: runs in the private mount namespace, as root.
inside() {
  mount --make-rprivate /
  mount --bind "$root" "$root"
  mount --rbind /proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
  # A fresh home per run, so apptainer's cache (~/.apptainer) does not pile up.
  mount -t tmpfs -o "mode=0755,uid=$test_uid,gid=$test_gid" tmpfs "$root$test_home"
  local b host dst ro
  while IFS= read -r b; do
    [[ -n "$b" ]] || continue
    host="${b%%:*}"; dst="${b#*:}"; ro=""
    if [[ "$dst" == *:ro ]]; then dst="${dst%:ro}"; ro=1; fi
    host="$(realpath -e "$host")"
    # Mount points are created in the (shared) cached root; they stay as empty dirs/files.
    if [[ -d "$host" ]]; then
      mkdir -p "$root$dst"
    else
      mkdir -p "$(dirname "$root$dst")"; [[ -e "$root$dst" ]] || : >"$root$dst"
    fi
    mount --rbind "$host" "$root$dst"
    if [[ -n "$ro" ]]; then mount -o remount,bind,ro "$root$dst"; fi
  done <<<"${CONTAINERSPEC_APPTAINER_BINDS:-}"
  # pivot_root (not chroot) works here: the root is a mount point (the bind above) in a
  # private namespace. pivot_root(".", ".") stacks the old root on the new one; the lazy
  # unmount detaches it, so nothing of the host stays reachable but the binds.
  cd "$root"
  pivot_root . .
  umount -l .
  cd /
  local keep=() v
  for v in $(compgen -e); do
    case "$v" in APPTAINER*|SINGULARITY*|TERM) keep+=("$v=${!v}") ;; esac
  done
  local path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  if [[ -n "${CONTAINERSPEC_APPTAINER_AS_ROOT:-}" ]]; then
    exec env -i ${keep[@]+"${keep[@]}"} HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 \
      PATH="$path" "$@"
  fi
  exec env -i ${keep[@]+"${keep[@]}"} \
    HOME="$test_home" USER="$test_user" LOGNAME="$test_user" LANG=C.UTF-8 PATH="$path" \
    setpriv --reuid="$test_uid" --regid="$test_gid" --clear-groups -- "$@"
}

sif_cmd() {
  [[ $# -eq 1 ]] || die "usage: sif NAME (a rootfs name, see tests/rigs/rootfs.sh --list)"
  need_root
  local name="$1"
  local rootfs_cache
  rootfs_cache="$("$here/rootfs.sh" "$name")" || die "could not build rootfs '$name'"
  local src="$rootfs_cache/$name"
  [[ -f "$src/.containerspec-recipe" ]] || die "$src has no .containerspec-recipe"
  build_root
  local sifdir="$cache/sif" out="$cache/sif/$name.sif"
  local stamp
  stamp="$(cat "$src/.containerspec-recipe")
$recipe
mksquashfs as root + apptainer build|v2"
  if [[ -f "$out" && -f "$out.recipe" ]] && [[ "$(cat "$out.recipe")" == "$stamp" ]]; then
    echo "$out"
    return 0
  fi
  mkdir -p "$sifdir"
  exec 9>"$sifdir/.$name.lock"
  flock 9
  if [[ -f "$out" && -f "$out.recipe" ]] && [[ "$(cat "$out.recipe")" == "$stamp" ]]; then
    echo "$out"
    return 0
  fi
  echo "apptainer.sh: building $out from $src (about 1-2 min)" >&2
  local work log="$sifdir/$name.log"
  work="$(mktemp -d "$sifdir/.$name.XXXXXX")"
  chown "$test_uid:$test_gid" "$work"
  if ! "$0" run --as-root --bind "$src:/rootfs:ro" --bind "$work:/scratch" -- \
      mksquashfs /rootfs /scratch/rootfs.sqfs -noappend -no-progress -quiet >"$log" 2>&1 \
    || ! "$0" run --bind "$work:/scratch" -- \
      apptainer build /scratch/image.sif /scratch/rootfs.sqfs >>"$log" 2>&1; then
    tail -20 "$log" >&2
    rm -rf "$work"
    die "building the SIF of $name failed, see $log"
  fi
  rm -f "$out" "$out.recipe"
  mv "$work/image.sif" "$out"
  chown root:root "$out"
  chmod 0644 "$out"
  printf '%s' "$stamp" >"$out.recipe"
  rm -rf "$work"
  echo "$out"
}

case "${1:-}" in
  build) shift; [[ $# -eq 0 ]] || die "build takes no arguments"; build_root; echo "$root" ;;
  run) shift; run_cmd "$@" ;;
  sif) shift; sif_cmd "$@" ;;
  __inside) shift; inside "$@" ;;
  -h|--help|help) usage ;;
  "") usage >&2; exit 2 ;;
  *) echo "apptainer.sh: unknown command '$1'" >&2; usage >&2; exit 2 ;;
esac
