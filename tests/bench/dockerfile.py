#!/usr/bin/env python3
"""Times `containerspec dockerfile check` over a directory of Dockerfiles against a local
registry, beside `skopeo inspect` of the same references measured in the same run.

It starts Debian's docker-registry on a free loopback port (stopped by its pid at the
end), pushes the test images under many tags with skopeo, writes DOCKERFILES Dockerfiles
with one to three FROM lines each, and then, round by round and in turn:
  - containerspec dockerfile check DIR          (one process; each reference resolved
                                                 once; requests concurrent)
  - containerspec ... --concurrency 1           (the same, one request at a time)
  - skopeo inspect per distinct reference        (sequential, one process each)
  - skopeo inspect per FROM line                 (what a shell loop over the files does)
It prints medians and ratios; it asserts nothing. It also runs containerspec once on a
pseudo-terminal and shows the progress line it draws there.
"""

import argparse
import os
import random
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, log):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: docker-registry exited: {open(log).read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /v2/ HTTP/1.0\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1."):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("bench: docker-registry did not answer within 20 s")


def timed(argv, ok=(0,)):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(f"bench: {' '.join(argv)} exited with {proc.returncode}: "
                         f"{proc.stderr.decode()[-500:]}")
    return elapsed


def skopeo_inspect(ref):
    return ["skopeo", "inspect", "--raw", "--tls-verify=false", "--no-creds",
            f"docker://{ref}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containerspec", required=True)
    ap.add_argument("--layouts", required=True, help="the registry rig's OCI layouts")
    ap.add_argument("--dockerfiles", type=int, default=200)
    ap.add_argument("--tags", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--line-rounds", type=int, default=3,
                    help="rounds of the slowest baseline (skopeo per FROM line)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="containerspec-bench-dockerfile-")
    data = os.path.join(work, "data")
    os.makedirs(data)
    port = free_port()
    config = os.path.join(work, "config.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {data}\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    log = os.path.join(work, "registry.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    registry = subprocess.Popen(["docker-registry", "serve", config],
                                stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(port, registry, log)
        addr = f"127.0.0.1:{port}"
        layouts = ["base:bullseye", "base:bookworm", "base:trixie", "multi:bookworm"]
        refs = []
        start = time.perf_counter()
        for i in range(args.tags):
            layout = layouts[i % len(layouts)]
            ref = f"{addr}/app{i % 8}:1.{i}"
            subprocess.run(["skopeo", "copy", "-q", "--all", "--insecure-policy",
                            "--dest-tls-verify=false", "--dest-no-creds",
                            f"oci:{os.path.join(args.layouts, layout)}", f"docker://{ref}"],
                           check=True)
            refs.append(ref)
        pushed = time.perf_counter() - start

        rng = random.Random(42)
        tree = os.path.join(work, "dockerfiles")
        lines = []
        for n in range(args.dockerfiles):
            d = os.path.join(tree, f"service{n:03d}")
            os.makedirs(d)
            chosen = [rng.choice(refs) for _ in range(rng.randint(1, 3))]
            lines.extend(chosen)
            body = []
            for k, ref in enumerate(chosen):
                body.append(f"FROM {ref} AS stage{k}\nRUN true\n")
            with open(os.path.join(d, "Dockerfile"), "w") as f:
                f.write("# generated for the benchmark\n" + "\n".join(body))
        distinct = sorted(set(lines))
        print(f"{args.dockerfiles} Dockerfiles, {len(lines)} FROM lines, "
              f"{len(distinct)} distinct references ({args.tags} tags pushed in {pushed:.1f} s)")

        cs = [args.containerspec, "dockerfile", "check", tree]
        runs = {
            "containerspec dockerfile check": lambda: timed(cs, ok=(0, 1)),
            "containerspec --concurrency 1": lambda: timed(cs + ["--concurrency", "1"], ok=(0, 1)),
            "skopeo inspect, once per reference": lambda: sum(timed(skopeo_inspect(r)) for r in distinct),
        }
        times = {name: [] for name in runs}
        times["skopeo inspect, once per FROM line"] = []
        for r in range(args.rounds):
            for name, fn in runs.items():
                times[name].append(fn())
            if r < args.line_rounds:
                times["skopeo inspect, once per FROM line"].append(
                    sum(timed(skopeo_inspect(ref)) for ref in lines))

        base = statistics.median(times["containerspec dockerfile check"])
        print(f"\n{'command':40} {'median':>9} {'runs':>5} {'x containerspec':>16}")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"{name:40} {m:8.3f}s {len(ts):5d} {m / base:15.1f}x")

        # The progress line, as a terminal shows it.
        out = subprocess.run(["script", "-qec", " ".join(cs), "/dev/null"],
                             capture_output=True)
        updates = [seg.split(b"\n")[0].decode(errors="replace").strip()
                   for seg in out.stdout.split(b"\r") if seg.startswith(b"resolving")]
        if updates:
            print(f"\non a terminal, stderr redraws one line {len(updates)} times, "
                  f"from {updates[0]!r} to {updates[-1]!r}")
    finally:
        registry.terminate()
        registry.wait(timeout=10)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
