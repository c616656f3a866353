#!/usr/bin/env python3
"""Times `runc run` of a trivial container with the containerspec hook against the same
with /bin/true as the hook, side by side in one run: for a container that asks for
nothing (the check-only path) and for one that asks for MPI injection.

Run as root inside a private mount namespace (tests/bench/run.sh does that): the
bundle's rootfs is an overlay of a cached Debian rootfs, so injection has somewhere to
create its mount points without writing the cache. Each round starts every variant once,
in turn; the report quotes medians and ratios. It prints figures; it asserts nothing.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time


def bundle(base, name, rootfs_dir, hook_argv, inject):
    path = os.path.join(base, name)
    os.makedirs(path)
    subprocess.run(["runc", "spec", "--bundle", path], check=True)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["root"] = {"path": rootfs_dir, "readonly": False}
    config["hooks"] = {"createRuntime": [{"path": hook_argv[0], "args": hook_argv}]}
    config["annotations"] = {"org.supercontainers.inject": "mpi"} if inject else {}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--containerspec", required=True)
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args()

    base = tempfile.mkdtemp(prefix="containerspec-hookbench-")
    layers = {n: os.path.join(base, n) for n in ("upper", "work", "rootfs")}
    for d in layers.values():
        os.makedirs(d)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={args.rootfs},upperdir={layers['upper']},workdir={layers['work']}",
                    layers["rootfs"]], check=True)
    cs = os.path.abspath(args.containerspec)
    true_hook = ["/bin/true"]
    cs_hook = [cs, "hook", "createRuntime"]
    variants = {
        "nothing asked, /bin/true hook": bundle(base, "a", layers["rootfs"], true_hook, False),
        "nothing asked, containerspec hook": bundle(base, "b", layers["rootfs"], cs_hook, False),
        "mpi asked, /bin/true hook": bundle(base, "c", layers["rootfs"], true_hook, True),
        "mpi asked, containerspec hook": bundle(base, "d", layers["rootfs"], cs_hook, True),
    }
    state = os.path.join(base, "runc-state")
    times = {name: [] for name in variants}
    counter = 0
    for round_ in range(args.rounds + 1):
        for name, path in variants.items():
            counter += 1
            start = time.perf_counter()
            proc = subprocess.run(["runc", "--root", state, "run", "--bundle", path, f"bench-{counter}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(f"hook bench: {name}: runc failed: {proc.stderr.decode(errors='replace')}")
            if round_ > 0:  # the first round warms caches (and the host facts cache)
                times[name].append(elapsed)

    print(f"runc run of a trivial container, {args.rounds} rounds interleaved; rootfs overlay of {args.rootfs}")
    print(f"{'variant':36} {'median':>10} {'p25..p75':>19}")
    for name, values in times.items():
        q = statistics.quantiles(values, n=4)
        print(f"{name:36} {statistics.median(values) * 1000:8.2f}ms {q[0] * 1000:8.2f}..{q[2] * 1000:8.2f}ms")
    med = {k: statistics.median(v) for k, v in times.items()}
    check = med["nothing asked, containerspec hook"] / med["nothing asked, /bin/true hook"]
    inject = med["mpi asked, containerspec hook"] / med["mpi asked, /bin/true hook"]
    print()
    print(f"check-only: {check:.2f} times the /bin/true hook (target: within 1.2)")
    print(f"MPI injection: {inject:.2f} times the /bin/true hook (target: within 1.5)")


if __name__ == "__main__":
    main()
