#!/usr/bin/env bash
# The action's step (action.yml): runs `containerspec dockerfile COMMAND` with the inputs
# GitHub passes as INPUT_* variables, writes the JSON report, the outputs (GITHUB_OUTPUT)
# and a job summary (GITHUB_STEP_SUMMARY), and exits with the command's status.
set -euo pipefail

command="${INPUT_COMMAND:-check}"
case "$command" in
  check | pin | update) ;;
  *)
    echo "::error::containerspec: command must be check, pin or update (got '$command')"
    exit 2
    ;;
esac

bin="${CONTAINERSPEC:-}"
if [[ -z "$bin" ]]; then
  if command -v containerspec >/dev/null 2>&1; then
    bin="$(command -v containerspec)"
  else
    # Built from the action's own checkout: contrib/github-action is two levels down.
    src="$(cd "$GITHUB_ACTION_PATH/../.." && pwd)"
    cargo install --locked --quiet --path "$src" --root "${RUNNER_TEMP:-/tmp}/containerspec"
    bin="${RUNNER_TEMP:-/tmp}/containerspec/bin/containerspec"
  fi
fi

args=("$command" --json)
if [[ "$command" == update ]]; then
  [[ "${INPUT_TO_NEWER_TAGS:-false}" == true ]] && args+=(--to-newer-tags)
  [[ -n "${INPUT_HOSTS:-}" ]] && args+=(--hosts "$INPUT_HOSTS")
  [[ -n "${INPUT_INJECT:-}" ]] && args+=(--inject "$INPUT_INJECT")
fi
[[ -n "${INPUT_AUTHFILE:-}" ]] && args+=(--authfile "$INPUT_AUTHFILE")
read -r -a extra <<<"${INPUT_ARGS:-}"
read -r -a paths <<<"${INPUT_PATHS:-.}"

report="${RUNNER_TEMP:-/tmp}/containerspec-dockerfile-$$.json"
status=0
"$bin" dockerfile "${args[@]}" "${extra[@]}" "${paths[@]}" >"$report" || status=$?

changed=0
if [[ -s "$report" ]] && command -v jq >/dev/null 2>&1; then
  changed="$(jq '.summary.changed_files' "$report")"
  # One annotation per base that needs attention, at its file and line.
  jq -r '.files[] | .path as $p | (.error // empty | "::error file=\($p)::\(.)"),
    (.bases[] | select(.status != "current" and .status != "pinned" and .status != "-")
      | "::warning file=\($p),line=\(.line)::\(.written): \(.status)\(if (.newer_tags | length) > 0
          then " (newer: \(.newer_tags | join(", ")))" else "" end)"),
    (.bases[] | .refused[]? | "::error file=\($p)::not moved to \(.candidate): host \(.host): \(.error // ([.findings[].message] | join("; ")))")' \
    "$report" || true
fi

if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
  {
    echo "report=$report"
    echo "status=$status"
    echo "changed=$changed"
  } >>"$GITHUB_OUTPUT"
fi
if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
  {
    echo "### containerspec dockerfile $command"
    echo
    echo '```'
    if command -v jq >/dev/null 2>&1 && [[ -s "$report" ]]; then
      jq -r '.summary | to_entries | map("\(.key): \(.value)") | join("\n")' "$report"
    fi
    echo '```'
  } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
