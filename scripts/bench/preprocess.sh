#!/usr/bin/env bash
# Benchmark: preprocess-resize vs Pillow doing the same decode + resize + id mapping, on the
# same GTA5-sized data (1914x1052 -> 720x1280, bicubic image, nearest label), same machine.
# Usage: scripts/bench/preprocess.sh [N_IMAGES=48]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
n="${1:-48}"
py="$root/.venv/bin/python"
bash "$root/scripts/setup.sh"
cargo build --quiet --release --workspace --bins --manifest-path "$root/Cargo.toml"  # --workspace: keeps the cached pipeline binaries valid
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$py" "$root/scripts/bench/make_gta5_like.py" "$work/gta5" "$n"
echo "machine: $(nproc) cores; $n images 1914x1052 -> 720x1280"
"$py" "$root/scripts/bench/preprocess_pillow.py" "$work/gta5" 720 1280 | tee "$work/pillow.txt"
pillow=$(grep -o '= [0-9.]* images/s' "$work/pillow.txt" | grep -o '[0-9.]*')
for threads in 1 $(nproc); do
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=$threads UDA_PROGRESS=off "$root/target/release/preprocess-resize" \
    --out "$work/out$threads" --input root="$work/gta5" -p 'size=[720, 1280]' -p previews=0
  end=$(date +%s.%N)
  "$py" -c "r = $n / ($end - $start); print(f'preprocess-resize ($threads thread(s), incl. hashing + Zarr write): {r:.2f} images/s = {r / $pillow:.2f}x Pillow (1 process)')"
done
