#!/usr/bin/env bash
# Checks, before any set-up, that a Rust toolchain new enough for Cargo.toml's
# rust-version is on PATH (or in ~/.cargo/bin, where rustup puts it), and says how to
# get one otherwise. Sourced by demo.sh and test.sh from the repository root; exports
# the PATH it found cargo on.
need="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)"
[[ -n $need ]] || { echo "rust.sh: no rust-version in Cargo.toml" >&2; exit 1; }
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
how="Install Rust $need or newer with rustup (for the user who builds; it puts cargo in
~/.cargo/bin), or the distribution's rustc and cargo where they are that new (Debian 12's
1.63 and Debian 13's 1.85.0 are not)."
if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
  echo "containerspec needs a Rust toolchain (cargo and rustc), and none is on PATH." >&2
  echo "$how" >&2
  exit 1
fi
have="$(rustc --version | awk '{print $2}')"
if [[ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | head -1)" != "$need" ]]; then
  echo "containerspec needs Rust $need or newer; $(command -v rustc) is $have." >&2
  echo "$how" >&2
  exit 1
fi
