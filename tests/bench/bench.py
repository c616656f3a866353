#!/usr/bin/env python3
"""Times containerspec's inventory commands against a baseline measured in the same run.

Each round runs every command once, in turn, so that noise on this shared machine hits
all of them alike; the report quotes medians (and the spread between the 25th and 75th
percentiles), ratios against the baseline, and the peak resident memory of each command
(from wait4's rusage). It prints figures; it asserts nothing.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time


def run_once(argv):
    """Runs argv with output discarded; returns its wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} exited with {proc.returncode}")
    return elapsed


def peak_rss_kib(argv):
    """Peak resident memory of argv in KiB, measured by GNU time. (A child forked from
    this Python process would inherit Python's high-water mark across exec, so the
    measurement needs a small parent.)"""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *argv],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return int(out.read().strip().splitlines()[-1])


def make_bundle(rootfs, name="bench-bundle", env=()):
    """An OCI bundle around the rootfs whose process is its MPI test program."""
    bundle = os.path.join(os.path.dirname(rootfs.rstrip("/")), "..", name)
    bundle = os.path.normpath(bundle)
    os.makedirs(bundle, exist_ok=True)
    config = {
        "ociVersion": "1.0.2",
        "root": {"path": os.path.abspath(rootfs)},
        "process": {"cwd": "/", "args": ["/opt/containerspec-test/mpi-version"], "env": ["PATH=/usr/bin:/bin", *env],
                    "user": {"uid": 0, "gid": 0}},
    }
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def quartiles(values):
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--containerspec", required=True)
    ap.add_argument("--archspec", required=True)
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--site-hosts", help="tests/rigs/site-mpi.sh's host roots: also time "
                    "check-bundle --inject mpi against MPIs installed under a site prefix")
    args = ap.parse_args()

    cs = args.containerspec
    bundle = make_bundle(args.rootfs)
    commands = {
        "/bin/true (cost of starting a process)": ["/bin/true"],
        "archspec cpu (Python, baseline)": [args.archspec, "cpu"],
        "containerspec host --no-cache": [cs, "host", "--no-cache"],
        "containerspec host": [cs, "host"],
        "containerspec host --json": [cs, "host", "--json"],
        "containerspec inspect (default)": [cs, "inspect", args.rootfs],
        "containerspec inspect --all": [cs, "inspect", "--all", args.rootfs],
        "containerspec inspect BUNDLE": [cs, "inspect", bundle],
        "containerspec check-bundle BUNDLE": [cs, "check-bundle", bundle],
        "containerspec check-bundle --inject mpi": [cs, "check-bundle", bundle, "--inject", "mpi"],
        "check-bundle --inject mpi --no-cache": [cs, "check-bundle", bundle, "--inject", "mpi", "--no-cache"],
    }
    # Host MPIs under a site prefix, named by the host root's config (as a site with
    # modules has them): Intel MPI with its libfabric and providers, MPICH with the
    # libfabric and UCX it bundles.
    site = []
    for name in ["intel-mpi-module", "mpich-module"] if args.site_hosts else []:
        root = os.path.join(args.site_hosts, name)
        conf = os.path.join(root, "etc/containerspec/config.toml")
        # The variable Intel MPI's providers need, as a job passes it (else: incompatible).
        env = ["FI_PROVIDER_PATH=/sw/intel-mpi/2021.13.1/lib/libfabric/prov"] if name.startswith("intel") else []
        b = make_bundle(args.rootfs, f"bench-bundle-{name}", env)
        argv = [cs, "check-bundle", b, "--inject", "mpi", "--host-root", root, "--config", conf]
        commands[f"--inject mpi, {name}"] = argv
        commands[f"--inject mpi, {name} --no-cache"] = argv + ["--no-cache"]
        site.append(name)
    # Warm the page cache and the binaries once before measuring.
    for argv in commands.values():
        run_once(argv)
    times = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, argv in commands.items():
            times[name].append(run_once(argv))
    rss = {name: [peak_rss_kib(argv) for _ in range(3)] for name, argv in commands.items()}

    baseline = statistics.median(times["archspec cpu (Python, baseline)"])
    print(f"{args.rounds} rounds, interleaved; rootfs {args.rootfs}; {os.cpu_count()} CPUs")
    print(f"{'command':42} {'median':>10} {'p25..p75':>19} {'vs archspec':>12} {'peak RSS':>10}")
    for name in commands:
        med = statistics.median(times[name])
        lo, hi = quartiles(times[name])
        ratio = baseline / med
        print(
            f"{name:42} {med * 1000:8.2f}ms {lo * 1000:8.2f}..{hi * 1000:8.2f}ms "
            f"{ratio:10.1f}x {max(rss[name]) / 1024:8.1f}MiB"
        )
    host = statistics.median(times["containerspec host"])
    cold = statistics.median(times["containerspec host --no-cache"])
    print()
    spawn = statistics.median(times["/bin/true (cost of starting a process)"])
    print(f"host vs archspec cpu: {baseline / host:.1f} times faster with the CPU cache, "
          f"{baseline / cold:.1f} times without it (target: at least 20)")
    print(f"  net of starting a process ({spawn * 1000:.2f} ms, /bin/true): "
          f"{(baseline - spawn) / (host - spawn):.1f} times with the cache, "
          f"{(baseline - spawn) / (cold - spawn):.1f} times without")
    print(f"inspect default: {statistics.median(times['containerspec inspect (default)']) * 1000:.2f} ms (target: under 20 ms)")
    print(f"inspect --all: {statistics.median(times['containerspec inspect --all']) * 1000:.0f} ms (target: under 1000 ms)")
    inspect_b = statistics.median(times["containerspec inspect BUNDLE"])
    verdict = statistics.median(times["containerspec check-bundle --inject mpi"])
    cold = statistics.median(times["check-bundle --inject mpi --no-cache"])
    print(f"check-bundle with MPI injection: {verdict * 1000:.2f} ms, {verdict / inspect_b:.2f} times inspect of the "
          f"same bundle ({inspect_b * 1000:.2f} ms) (targets: under 30 ms, under 2 times)")
    print(f"  reading the host afresh (--no-cache): {cold * 1000:.2f} ms, {cold / inspect_b:.2f} times inspect")
    for name in site:
        cached = statistics.median(times[f"--inject mpi, {name}"])
        fresh = statistics.median(times[f"--inject mpi, {name} --no-cache"])
        print(f"check-bundle --inject mpi against {name} (a prefix the config names): "
              f"{cached * 1000:.2f} ms, {cached / inspect_b:.2f} times inspect (target: under 2 times); "
              f"--no-cache {fresh * 1000:.2f} ms, {fresh / inspect_b:.2f} times")
    peak = max(max(v) for k, v in rss.items() if k.startswith(("containerspec", "--inject", "check-bundle"))) / 1024
    print(f"peak memory of containerspec: {peak:.1f} MiB (target: under 64 MiB)")


if __name__ == "__main__":
    main()
