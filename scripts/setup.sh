#!/usr/bin/env bash
# One-time, idempotent set-up: the project-local virtualenv that provides libtorch (from the
# PyPI torch wheel) and the Python reference implementations used by the parity tests.
# A second call finds the stamp matching scripts/requirements.txt and returns at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/scripts/requirements.txt"
stamp="$venv/.uda-requirements"

if [ -f "$stamp" ] && [ -e "$venv/libtorch" ] && cmp -s "$stamp" "$req"; then
  exit 0
fi

py="${UDA_PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "setup: no '$py' on PATH; install Python >= 3.10 or set UDA_PYTHON" >&2
  exit 1
fi
echo "setup: creating $venv (torch 2.11.0 and test references; ~5 GB, a few minutes once)" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
# A version-independent link to libtorch; binaries carry an rpath to it (.cargo/config.toml).
ln -sfn "$("$venv/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" "$venv/libtorch"
cp "$req" "$stamp"
echo "setup: done" >&2
