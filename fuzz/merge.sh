#!/usr/bin/env bash
# Folds a campaign's new inputs (hfuzz_workspace/TARGET/new) into corpus/TARGET while
# keeping the corpus small: honggfuzz minimizes the union first; then CANDIDATES (50)
# of the minimized new inputs of at most MAX_BYTES each, spread over their sizes, are
# each run with the corpus, and those that add the most edges to it are copied in until
# corpus/TARGET holds MAX_FILES files. Prints what it kept and the corpus's edge count before and after.
# Usage: merge.sh TARGET [MAX_FILES] [MAX_BYTES] [CANDIDATES]
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: merge.sh TARGET [MAX_FILES] [MAX_BYTES] [CANDIDATES]}
max_files=${2:-20}
max_bytes=${3:-4096}
candidates_max=${4:-50}
bin=hfuzz_target/x86_64-unknown-linux-gnu/release/$target
[[ -x $bin && -x hfuzz_target/honggfuzz ]] || { echo "merge.sh: run cargo hfuzz build first" >&2; exit 1; }
work=hfuzz_workspace/$target/merge
rm -rf "$work"
mkdir -p "$work/all" "$work/min"
cp corpus/"$target"/* "$work/all/"
cp hfuzz_workspace/"$target"/new/* "$work/all/" 2>/dev/null || true

# The edge count after a dry run of the files in $1.
edges() {
  rm -rf "$work/out"
  mkdir -p "$work/out"
  hfuzz_target/honggfuzz -i "$1" -o "$work/out" --minimize -n 1 -v -t 5 -- "$bin" 2>&1 |
    grep -o 'Cur:[0-9/]*' | tail -1 | cut -d/ -f4
}

hfuzz_target/honggfuzz -i "$work/all" -o "$work/min" --minimize -n 1 -v -t 5 -- "$bin" >"$work/min.log" 2>&1
mkdir -p "$work/set"
cp corpus/"$target"/* "$work/set/"
best=$(edges "$work/set")
echo "merge.sh: $target: seeds $(ls corpus/"$target" | wc -l) files, $best edges; minimized union $(ls "$work/min" | wc -l) files"
# CANDIDATES inputs spread evenly over the size order of the minimized new inputs (the
# smallest alone reach little past the first checks).
mapfile -t small < <(find "$work/min" -type f -size -"$((max_bytes + 1))"c -printf '%s %p\n' |
  sort -n | cut -d' ' -f2- | while read -r f; do
    [[ -e corpus/$target/$(basename "$f") ]] || echo "$f"
  done)
candidates=()
step=$(((${#small[@]} + candidates_max - 1) / candidates_max))
for ((i = 0; i < ${#small[@]}; i += (step > 0 ? step : 1))); do
  candidates+=("${small[i]}")
done
# The edges each candidate adds to the seeds alone, best first.
for file in "${candidates[@]}"; do
  cp "$file" "$work/set/"
  now=$(edges "$work/set")
  rm "$work/set/$(basename "$file")"
  if [[ ${now:-0} -gt $best ]]; then
    echo "$((now - best)) $(stat -c %s "$file") $file"
  fi
done | sort -k1,1nr -k2,2n >"$work/gains"
room=$((max_files - $(ls corpus/"$target" | wc -l)))
head -n "$((room > 0 ? room : 0))" "$work/gains" | while read -r gain size file; do
  echo "merge.sh: + $(basename "$file") ($size bytes, +$gain edges alone)"
  cp "$file" "corpus/$target/"
done
rm -rf "$work/set"
mkdir -p "$work/set"
cp corpus/"$target"/* "$work/set/"
echo "merge.sh: $target: corpus now $(ls corpus/"$target" | wc -l) files, $(du -sh corpus/"$target" | cut -f1), $best -> $(edges "$work/set") edges"
