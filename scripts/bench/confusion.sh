#!/usr/bin/env bash
# Benchmark: 19-class confusion-matrix accumulation, uda-metrics vs numpy's bincount-based
# `fast_hist` (FDA's / ADVENT's evaluation code), over the same label maps on the same machine.
# Maps are generated in memory by the same hash on both sides (no disk; generation not timed),
# a batch at a time, so memory stays bounded; the script checks both matrices are equal.
# Usage: scripts/bench/confusion.sh [MAPS=500] [HEIGHT=1024] [WIDTH=2048] [SEED=0]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
maps="${1:-500}"; h="${2:-1024}"; w="${3:-2048}"; seed="${4:-0}"
py="$root/.venv/bin/python"
bash "$root/scripts/setup.sh"
cargo build --quiet --release -p uda-metrics --example confusion_bench --manifest-path "$root/Cargo.toml"
bench="$root/target/release/examples/confusion_bench"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $maps maps of ${h}x${w}, seed $seed"
"$py" "$root/scripts/bench/confusion_numpy.py" "$maps" "$h" "$w" "$seed" > "$work/numpy.txt"
grep -v '^matrix:' "$work/numpy.txt"
numpy=$(grep 'uint8 labels' "$work/numpy.txt" | grep -o '= [0-9.]* maps/s' | grep -o '[0-9.]*')
numpy64=$(grep 'int64 labels' "$work/numpy.txt" | grep -o '= [0-9.]* maps/s' | grep -o '[0-9.]*')
for threads in 1 $(nproc); do
  RAYON_NUM_THREADS=$threads "$bench" "$maps" "$h" "$w" "$seed" > "$work/rust$threads.txt"
  if ! cmp -s <(grep '^matrix:' "$work/numpy.txt") <(grep '^matrix:' "$work/rust$threads.txt"); then
    echo "ERROR: confusion matrices differ between numpy and uda-metrics ($threads threads)" >&2
    exit 1
  fi
  rate=$(grep -o '= [0-9.]* maps/s' "$work/rust$threads.txt" | grep -o '[0-9.]*')
  "$py" -c "print(f'$(grep -v '^matrix:' "$work/rust$threads.txt") = {$rate / $numpy:.1f}x numpy fast_hist on uint8 labels, {$rate / $numpy64:.1f}x on int64 labels (matrices identical)')"
done
