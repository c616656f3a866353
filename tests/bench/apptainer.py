#!/usr/bin/env python3
"""Reading an Apptainer SIF in place against reading the directory it was built from.

Commands, interleaved round by round so that noise on this shared machine hits all of
them alike:
  inspect DIR                          the baseline: the unpacked root filesystem
  inspect SIF                          the same inventory, read from the SIF's squashfs
  apptainer check DIR                  the whole pre-flight over the directory
  apptainer check SIF                  the same over the SIF: inventory, host facts, verdict
  apptainer check --inject mpi SIF     ... with the MPI injection plan
  apptainer check --inject mpi DIR     the same pre-flight over the sandbox directory
It prints medians with the 25th..75th percentile spread and the ratios; it asserts
nothing. The host facts come from containerspec's cache, as on a node where the first
rank of a job has run.
"""

import argparse
import statistics
import subprocess
import time


def run_once(argv):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench: {' '.join(argv)} exited with {proc.returncode}")
    return elapsed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--containerspec", required=True)
    p.add_argument("--sif", required=True)
    p.add_argument("--rootfs", required=True)
    p.add_argument("--rounds", type=int, default=21)
    args = p.parse_args()
    cs = args.containerspec
    commands = {
        "inspect DIR (baseline)": [cs, "inspect", args.rootfs],
        "inspect SIF": [cs, "inspect", args.sif],
        "apptainer check DIR": [cs, "apptainer", "check", args.rootfs],
        "apptainer check SIF": [cs, "apptainer", "check", args.sif],
        "apptainer check --inject mpi SIF": [cs, "apptainer", "check", "--inject", "mpi", args.sif],
        "apptainer check --inject mpi DIR": [cs, "apptainer", "check", "--inject", "mpi", args.rootfs],
    }
    for argv in commands.values():  # warm the page cache and the host facts cache
        run_once(argv)
    times = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, argv in commands.items():
            times[name].append(run_once(argv))
    base = statistics.median(times["inspect DIR (baseline)"])
    print(f"{args.rounds} rounds, interleaved; SIF {args.sif}; directory {args.rootfs}")
    print(f"{'command':36} {'median':>10} {'p25..p75':>19} {'vs inspect DIR':>15}")
    for name, values in times.items():
        q = statistics.quantiles(values, n=4)
        med = statistics.median(values)
        print(f"{name:36} {med * 1000:8.2f} ms {q[0] * 1000:7.2f}..{q[2] * 1000:7.2f} ms {med / base:14.2f}x")
    check = statistics.median(times["apptainer check SIF"])
    check_dir = statistics.median(times["apptainer check DIR"])
    inject = statistics.median(times["apptainer check --inject mpi SIF"])
    print()
    print(f"apptainer check on the SIF: {check * 1000:.2f} ms, {check / base:.2f} times inspect of the "
          f"directory (target: under 2 times and under 100 ms)")
    print(f"  the same check over the directory: {check_dir * 1000:.2f} ms; reading the SIF in place "
          f"adds {(check - check_dir) * 1000:.2f} ms ({check / check_dir:.2f} times)")
    print(f"  with the MPI injection plan: {inject * 1000:.2f} ms, {inject / base:.2f} times")


if __name__ == "__main__":
    main()
