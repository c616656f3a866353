#!/usr/bin/env python3
"""Times `containerspec match` against many node descriptions, beside the naive way
measured in the same run.

It writes HOSTS host descriptions (`host --root ROOT --json` of the test roots, varied
as a cluster varies: CPUs without AVX-512 or AVX2, MPI installations that need an older
or newer glibc) and IMAGES OCI bundles of the test roots (with and without MPI
injection), then, round by round:
  - match IMAGE --hosts DIR                 one image, every host loaded once
  - match IMAGE... --hosts DIR              every image, every host loaded once
  - match IMAGE --hosts ONE.json            the naive way, one process per (image, host):
                                            SAMPLES pairs timed, the total extrapolated
It prints medians and ratios, and checks that both ways give the same answer on the
sampled pairs; it asserts nothing about time.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time

ROOTS = ["bullseye-mpich", "bookworm-mpich", "trixie-mpich",
         "bullseye-openmpi", "bookworm-openmpi", "trixie-openmpi"]
AVX512 = ("avx512",)


def run(argv, ok=(0, 1)):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(f"bench: {' '.join(argv[:4])}... exited with {proc.returncode}: "
                         f"{proc.stderr.decode()[-500:]}")
    return elapsed, proc.stdout


def describe(cs, rootfs):
    out = subprocess.run([cs, "host", "--root", rootfs, "--json"], check=True,
                         stdout=subprocess.PIPE).stdout
    return json.loads(out)


def vary(desc, rng):
    d = json.loads(json.dumps(desc))
    cpu = d.get("cpu") or {}
    usable = cpu.get("usable_features", [])
    kind = rng.random()
    if kind < 0.35:
        usable = [f for f in usable if not f.startswith(AVX512)]
    elif kind < 0.5:
        usable = [f for f in usable if not f.startswith(AVX512)
                  and f not in ("avx2", "fma", "bmi1", "bmi2", "avx", "f16c", "movbe", "abm")]
    cpu["usable_features"] = usable
    for m in d.get("mpi_installations", []):
        if m.get("glibc_needed") and rng.random() < 0.3:
            m["glibc_needed"] = rng.choice(["2.28", "2.31", "2.34", "2.36", "2.38", "2.41"])
    return d


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--containerspec", required=True)
    p.add_argument("--rootfs-cache", required=True)
    p.add_argument("--hosts", type=int, default=10000)
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=200)
    a = p.parse_args()
    cs = os.path.abspath(a.containerspec)
    rng = random.Random(14)
    with tempfile.TemporaryDirectory(prefix="containerspec-bench-clusters-") as tmp:
        base = [describe(cs, os.path.join(a.rootfs_cache, r)) for r in ROOTS]
        hosts = os.path.join(tmp, "hosts")
        os.mkdir(hosts)
        names = []
        for i in range(a.hosts):
            name = f"node{i:05d}"
            with open(os.path.join(hosts, name + ".json"), "w") as f:
                json.dump(vary(base[i % len(base)], rng), f)
            names.append(name)
        size = sum(os.path.getsize(os.path.join(hosts, n + ".json")) for n in names)
        images = []
        for i in range(a.images):
            root = os.path.join(a.rootfs_cache, ROOTS[i % len(ROOTS)])
            b = os.path.join(tmp, f"image{i:03d}")
            os.mkdir(b)
            inject = "mpi" if (i // len(ROOTS)) % 2 == 0 else "none"
            with open(os.path.join(b, "config.json"), "w") as f:
                json.dump({"ociVersion": "1.0.2", "root": {"path": root},
                           "process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
                                       "args": ["/opt/containerspec-test/mpi-version"],
                                       "env": ["PATH=/usr/bin:/bin"]},
                           "annotations": {"org.supercontainers.inject": inject}}, f)
            images.append(b)
        print(f"{a.hosts} host descriptions ({size / 1e6:.1f} MB), {a.images} images "
              f"(bundles of the {len(ROOTS)} MPI roots, MPI injected in half), "
              f"{a.rounds} rounds; naive: {a.samples} sampled (image, host) processes")

        one, many, naive = [], [], []
        answers = {}
        for r in range(a.rounds):
            t, out = run([cs, "match", images[1], "--hosts", hosts, "--json"])
            one.append(t)
            t, out = run([cs, "match", *images, "--hosts", hosts, "--json"])
            many.append(t)
            if r == 0:
                for img in json.loads(out)["images"]:
                    answers[img["image"]] = {n["name"]: n["fits"] for n in img["nodes"]}
        pairs = [(rng.choice(images), rng.choice(names)) for _ in range(a.samples)]
        agree = 0
        for img, name in pairs:
            t, out = run([cs, "match", img, "--hosts", os.path.join(hosts, name + ".json"),
                          "--json"])
            naive.append(t)
            fits = json.loads(out)["images"][0]["nodes"][0]["fits"]
            agree += fits == answers[img][name]
        fitting = sum(v for a_ in answers.values() for v in a_.values())

        per = statistics.median(naive)
        m1, mm = statistics.median(one), statistics.median(many)
        naive_one = per * a.hosts
        naive_all = per * a.hosts * a.images
        print(f"answers: {fitting} of {a.hosts * a.images} (image, host) pairs fit; "
              f"the naive way agrees on {agree} of {len(pairs)} sampled pairs")
        print(f"{'':52} {'median':>10} {'vs naive':>10}")
        print(f"{'naive: one match process per (image, host)':52} {per * 1000:8.1f}ms   (each)")
        print(f"{'1 image x %d hosts, one process' % a.hosts:52} {m1:9.2f}s {naive_one / m1:9.0f}x"
              f"   (naive: {naive_one:.0f} s)")
        print(f"{'%d images x %d hosts, one process' % (a.images, a.hosts):52} {mm:9.2f}s "
              f"{naive_all / mm:9.0f}x   (naive: {naive_all / 3600:.1f} h)")
        print(f"{'  per (image, host) pair':52} {mm / (a.hosts * a.images) * 1e6:8.2f}us")


if __name__ == "__main__":
    main()
