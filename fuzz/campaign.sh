#!/usr/bin/env bash
# Runs one fuzz campaign: TARGET for SECONDS (default 600) on one thread, seeded from
# corpus/TARGET, new inputs to hfuzz_workspace/TARGET/new, crashes to
# hfuzz_workspace/TARGET, the log (with the target's panic messages) to
# hfuzz_workspace/TARGET/campaign.log. Prints
# honggfuzz's closing summary. Run from anywhere; needs `cargo hfuzz` (see README.md).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: campaign.sh TARGET [SECONDS]}
seconds=${2:-600}
[[ -d corpus/$target ]] || { echo "campaign.sh: no corpus/$target" >&2; exit 1; }
ws=hfuzz_workspace/$target
mkdir -p "$ws/new"
export HFUZZ_INPUT=corpus/$target
export HFUZZ_RUN_ARGS="-n 1 --run_time $seconds -t 5 --rlimit_rss 2048 -v -Q -o $ws/new ${HFUZZ_EXTRA_ARGS:-}"
started=$(date -u +%FT%TZ)
echo "campaign $target: ${seconds}s from $started"
cargo hfuzz run "$target" >"$ws/campaign.log" 2>&1 || true
grep -E "Summary|^Crash|crashes_count" "$ws/campaign.log" | tail -5
ls "$ws" | grep -E '\.fuzz$' || echo "no crash files"
