#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine (as root) and builds
# the cached real root filesystems, the Apptainer rig and its SIF images, the CUDA rig, the
# registry images. Safe to re-run: installed packages and built roots are kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

packages=(
  mmdebstrap   # builds the real Debian root filesystems the tests inspect
  mpich libmpich-dev  # makes this machine an MPI host for `containerspec host`
  musl musl-tools     # a real musl loader and compiler for the musl tests
  gcc binutils        # compiles the ELF fixtures (version scripts, ISA notes)
  util-linux          # setpriv, to read as an unprivileged user in tests
  runc                # the OCI runtime the hook tests start containers with
  podman              # the container engine the hook tests register the hooks.d file with
  jq                  # merges the hook snippet into config.json in the docs' example
  squashfs-tools      # mksquashfs: squashfs and SIF fixtures for the image readers
  uidmap              # newuidmap/newgidmap: rootless podman for the rootless hook test
  qemu-user           # runs the CPU truth matrix's binaries as older CPUs would
  golang-go           # builds Go binaries with GOAMD64=v1..v4 for the CPU truth matrix
  clang               # builds binaries that record clang's command line, for the same matrix
  python3-venv        # the Python archspec (the reference the cpu test compares with)
  docker-registry     # the OCI distribution registry the dockerfile tests start on loopback
  skopeo              # pushes the test images to those registries and reads manifests back
  umoci               # builds the test images (OCI layouts) without a container engine
  apache2-utils       # htpasswd -B: the bcrypt password file of the authenticated registry
  slurmctld           # the Slurm controller the Slurm tests start with a config of their own
  slurmd              # the Slurm node daemon they start as the one real node
  slurm-client        # sbatch, srun, squeue, scontrol, sinfo, scancel
  slurm-wlm-basic-plugins  # Slurm's plugins, node_features/helpers among them
  munge               # munged: the authentication slurmctld, slurmd and the clients share
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: needs root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker-registry package enables a service on :5000 whose config asks for an
# htpasswd file that does not exist. The tests start their own registries on free
# loopback ports with their own configs, so the packaged one is kept off.
if [[ $(id -u) -eq 0 && -d /run/systemd/system ]] && systemctl is-enabled --quiet docker-registry.service 2>/dev/null; then
  systemctl disable --now --quiet docker-registry.service
fi
# The munge, slurmctld and slurmd packages enable services (munge starts with the key its
# package generates; the Slurm ones wait for /etc/slurm/slurm.conf). The Slurm tests start
# their own munged, slurmctld and slurmd (own key, socket, ports and configs), so when
# this script has just installed them the packaged services are kept off; a machine that
# already had them (a real Slurm node) keeps its services as they are.
for p in munge slurmctld slurmd; do
  [[ " ${missing[*]} " == *" $p "* && $(id -u) -eq 0 ]] || continue
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now --quiet "$p.service" 2>/dev/null || true
  elif [[ -x /etc/init.d/$p ]]; then
    "/etc/init.d/$p" stop >/dev/null 2>&1 || true
  fi
done

"$here/archspec.sh" >/dev/null

if [[ $(id -u) -eq 0 ]]; then
  # An unprivileged user with subordinate ids, for rootless podman in the hook tests.
  if ! id containerspec-rootless >/dev/null 2>&1; then
    useradd --create-home --shell /usr/sbin/nologin containerspec-rootless
  fi
  for f in /etc/subuid /etc/subgid; do
    grep -q '^containerspec-rootless:' "$f" 2>/dev/null || echo "containerspec-rootless:200000:65536" >> "$f"
  done
  "$here/rootfs.sh" "$@" >/dev/null
  # Real Apptainer (from a Debian sid root) and the SIFs it builds, for the apptainer
  # tests (a set-up for named roots only, as the benchmark asks for, skips them).
  if [[ $# -eq 0 ]]; then
    # Third-party MPI builds under a site prefix, on host roots, for the injection tests.
    "$here/site-mpi.sh" >/dev/null
    # Real CUDA runtime wheels in pip, conda and NGC layouts, and host roots with the real
    # NVIDIA driver libraries of Debian's non-free packages, for the CUDA truth matrix.
    "$here/cuda.sh" >/dev/null
    # Small real images (loader, libc, os-release of the roots above) as OCI layouts, and
    # a two-platform index, for the registry tests to push.
    "$here/registry.sh"
    "$here/apptainer.sh" build >/dev/null
    for name in trixie-mpich bullseye-mpich; do
      "$here/apptainer.sh" sif "$name" >/dev/null
    done
  fi
else
  echo "setup.sh: not root: the real-rootfs tests will skip (mmdebstrap needs root here)" >&2
fi
