#!/usr/bin/env bash
# The one test command (README; .ci/run calls exactly this): installs what the tests need
# (the project virtualenv with torch 2.11 and the Python references), builds, runs every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
cargo fmt --all -- --check
# Debug build: the heavy dependencies are built with opt-level 2 (see [profile.dev.package."*"]).
cargo test --workspace --no-fail-fast "$@"
