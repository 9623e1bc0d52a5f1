#!/usr/bin/env bash
# Idempotent system set-up for the tests: Debian packages the test suite needs beyond Rust and the
# project venv (scripts/setup.sh): `chromium`, the real browser in which tests/report_html.rs
# opens the HTML report, and `slurm-wlm` + `munge`, the real single-node Slurm cluster that
# tests/slurm_*.rs submit to (scripts/slurm/cluster.sh starts it). Installs only what is missing;
# as root through apt-get, otherwise prints what to install and goes on (those tests then skip
# with a reason).
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: missing ${missing[*]}; install as root: apt-get install -y ${missing[*]}" >&2
  echo "setup-system: continuing; tests that need them will skip" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: missing ${missing[*]} and no apt-get; install them with your package manager" >&2
  exit 0
fi
echo "setup-system: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
echo "setup-system: done" >&2
