#!/usr/bin/env bash
# Benchmark: preprocess-resize vs Pillow doing the same decode + resize + id mapping, on the
# same GTA5-sized data (1914x1052 -> 720x1280, bicubic image, nearest label), same machine.
# Rounds alternate Pillow and Rust runs (so drift on a shared VM hits both) and the medians
# are compared. preprocess-resize also hashes the source files and writes zstd Zarr shards.
# Usage: scripts/bench/preprocess.sh [N_IMAGES=48] [ROUNDS=5]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
n="${1:-48}" rounds="${2:-5}"
py="$root/.venv/bin/python"
bash "$root/scripts/setup.sh"
cargo build --quiet --release --workspace --bins --manifest-path "$root/Cargo.toml"  # --workspace: keeps the cached pipeline binaries valid
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$py" "$root/scripts/bench/make_gta5_like.py" "$work/gta5" "$n"
echo "machine: $(nproc) cores; $n images 1914x1052 -> 720x1280; $rounds rounds"
rust() {  # threads -> images/s
  local start end
  rm -rf "$work/out"
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=$1 UDA_PROGRESS=off "$root/target/release/preprocess-resize" \
    --out "$work/out" --input root="$work/gta5" -p 'size=[720, 1280]' -p previews=0
  end=$(date +%s.%N)
  "$py" -c "print($n / ($end - $start))"
}
: >"$work/rates"
for _ in $(seq "$rounds"); do
  p=$("$py" "$root/scripts/bench/preprocess_pillow.py" "$work/gta5" 720 1280 | grep -o '= [0-9.]* images/s' | grep -o '[0-9.]*')
  echo "pillow $p" >>"$work/rates"
  for threads in 1 $(nproc); do echo "rust$threads $(rust "$threads")" >>"$work/rates"; done
done
"$py" - "$work/rates" "$(nproc)" <<'PY'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    rates.setdefault(k, []).append(float(v))
pillow = statistics.median(rates["pillow"])
print(f"pillow (1 process): median {pillow:.2f} images/s (runs: {', '.join(f'{r:.1f}' for r in rates['pillow'])})")
for threads in sorted({1, int(sys.argv[2])}):
    r = statistics.median(rates[f"rust{threads}"])
    runs = ', '.join(f'{x:.1f}' for x in rates[f"rust{threads}"])
    print(f"preprocess-resize, {threads} thread(s): median {r:.2f} images/s = {r / pillow:.2f}x Pillow (runs: {runs})")
PY
