#!/usr/bin/env bash
# The one test command (README; .ci/run calls exactly this): installs what the tests need
# (the project virtualenv with torch 2.11 and the Python references), builds, runs every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# Debian packages the tests need (chromium for tests/report_html.rs); idempotent.
bash scripts/setup-system.sh
cargo fmt --all -- --check
# Debug build: the heavy dependencies are built with opt-level 2 (see [profile.dev.package."*"]).
# No incremental cache: CI builds once from clean, and the cache costs gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --no-fail-fast "$@"
