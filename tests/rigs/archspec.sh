#!/usr/bin/env bash
# The Python archspec (the reference implementation of archspec's detection), in a cached
# virtualenv: the cpu test compares containerspec's answer with it and the benchmark times
# it. Prints the virtualenv's python. pip installs from its default index.
set -euo pipefail
cache="${CONTAINERSPEC_TEST_CACHE:-/var/cache/containerspec-test}"
venv="$cache/venv-archspec"
if [[ ! -x "$venv/bin/archspec" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet archspec >&2
fi
echo "$venv/bin/python3"
