#!/usr/bin/env bash
# Smoke pass of the fuzz targets (fuzz/, see fuzz/README.md): installs honggfuzz's build
# dependencies and the pinned `cargo hfuzz`, builds every target with coverage
# instrumentation, then runs each one for a few seconds on one thread, starting from its
# seed corpus (fuzz/corpus/TARGET) and its saved findings (fuzz/regressions/TARGET).
# Fails when any target crashes (panic, abort, stack overflow), hangs past the timeout or
# cannot be run. FUZZ_SMOKE_SECONDS sets the seconds per target (default 10);
# arguments name the targets to run (default: all of them).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/rigs/rust.sh

seconds=${FUZZ_SMOKE_SECONDS:-10}
version="$(sed -n 's/^honggfuzz = { version = "=\([0-9.]*\)".*/\1/p' fuzz/Cargo.toml)"
[[ -n $version ]] || { echo "fuzz.sh: no pinned honggfuzz version in fuzz/Cargo.toml" >&2; exit 1; }

# honggfuzz's C side links libunwind and libbfd (binutils-dev) and uses blocks.
packages=(libunwind-dev binutils-dev libblocksruntime-dev make gcc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "fuzz.sh: needs root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "fuzz.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

have="$(cargo hfuzz version 2>/dev/null | awk '{print $2}' || true)"
if [[ $have != "$version" ]]; then
  echo "fuzz.sh: installing cargo hfuzz $version (found: ${have:-none})"
  cargo install honggfuzz --version "$version" --locked --quiet
fi

cd fuzz
mapfile -t all < <(sed -n 's/^name = "\([a-z_0-9]*\)"$/\1/p' Cargo.toml | grep -v '^containerspec-fuzz$')
targets=("${@:-${all[@]}}")
echo "fuzz.sh: building ${#all[@]} targets (cargo hfuzz build, honggfuzz $version)"
build_start=$SECONDS
cargo hfuzz build --locked --quiet
echo "fuzz.sh: built in $((SECONDS - build_start))s"

smoke=hfuzz_workspace/smoke
rm -rf "$smoke"
failed=()
for target in "${targets[@]}"; do
  ws=$smoke/$target
  mkdir -p "$ws/input" "$ws/new"
  n=0
  for dir in "corpus/$target" "regressions/$target"; do
    [[ -d $dir ]] || continue
    for f in "$dir"/*; do
      [[ -f $f ]] || continue
      cp "$f" "$ws/input/${dir%%/*}-$(basename "$f")"
      n=$((n + 1))
    done
  done
  [[ $n -gt 0 ]] || { echo "fuzz.sh: $target: no corpus/$target or regressions/$target inputs" >&2; failed+=("$target"); continue; }
  start=$SECONDS
  rc=0
  HFUZZ_WORKSPACE=$smoke HFUZZ_INPUT=$ws/input \
    HFUZZ_RUN_ARGS="-n 1 --run_time $seconds -t 5 --rlimit_rss 2048 -v -Q -o $ws/new" \
    cargo hfuzz run "$target" >"$ws/log" 2>&1 || rc=$?
  summary="$(grep -o 'Summary iterations:.*' "$ws/log" | tail -1 || true)"
  iterations="$(sed -n 's/.*iterations:\([0-9]*\).*/\1/p' <<<"$summary")"
  crashes="$(find "$ws" -maxdepth 1 -type f -name '*.fuzz' | wc -l)"
  timeouts="$(sed -n 's/.*timeout_count:\([0-9]*\).*/\1/p' <<<"$summary")"
  result=ok
  if [[ $rc -ne 0 || -z $summary ]]; then
    result="FAILED (honggfuzz exit $rc, no summary: see fuzz/$ws/log)"
  elif [[ $crashes -gt 0 ]]; then
    result="FAILED ($crashes crash file(s) in fuzz/$ws)"
  elif [[ ${timeouts:-0} -gt 0 ]]; then
    result="FAILED ($timeouts input(s) ran past the 5 s timeout)"
  fi
  printf 'fuzz.sh: %-12s %3d inputs, %ss, %s executions, %s crashes, %s timeouts: %s\n' \
    "$target" "$n" "$((SECONDS - start))" "${iterations:-?}" "$crashes" "${timeouts:-?}" "$result"
  if [[ $result != ok ]]; then
    failed+=("$target")
    find "$ws" -maxdepth 1 -type f -name '*.fuzz' -printf '  fuzz/%p\n'
    # The targets print a panic's message and location before they abort (-Q keeps
    # their stderr in the log); Rust reports a stack overflow the same way.
    grep -m2 -A1 -E "panicked at|has overflowed its stack|memory allocation of" "$ws/log" | sed 's/^/  /' || true
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets passed"
