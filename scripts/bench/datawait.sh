#!/usr/bin/env bash
# Benchmark: the fraction of wall time a real pretrain run spends waiting for data (target: < 5%).
# Data as in the paper: GTA5-sized images resized to 1280x720 (random 1024x512 crops) as source,
# 1024x512 images as target, read from Zarr by the loader's worker threads while the model trains.
# The wait fraction is read back from the run's train_log.parquet (Σ data_wait_s / Σ step_s).
# Usage: scripts/bench/datawait.sh [BACKBONE=deeplabv2-resnet101] [ITERATIONS=20] [DEVICE=auto] [N_IMAGES=24] [WORKERS=4]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
backbone="${1:-deeplabv2-resnet101}"
iterations="${2:-20}"
device="${3:-auto}"
n="${4:-24}"
workers="${5:-4}"
py="$root/.venv/bin/python"
bash "$root/scripts/setup.sh"
cargo build --quiet --release --workspace --bins --manifest-path "$root/Cargo.toml"  # --workspace: keeps the cached pipeline binaries valid
cargo build --quiet --release -p uda-train --example train_log_summary --example loader_throughput --manifest-path "$root/Cargo.toml"
bin="$root/target/release"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$py" "$root/scripts/bench/make_gta5_like.py" "$work/gta5" "$n"
export UDA_PROGRESS=off
# libtorch's OpenMP threads spin-wait otherwise, which on shared cores slows CPU training ~10x
# (and would flatter the loader). No effect on GPU runs.
export OMP_WAIT_POLICY=PASSIVE
"$bin/preprocess-resize" --out "$work/source" --input root="$work/gta5" -p 'size=[720, 1280]' -p previews=0
"$bin/preprocess-resize" --out "$work/target" --input root="$work/gta5" -p 'size=[512, 1024]' -p labels=none -p previews=0
echo "machine: $(nproc) cores"
# The loader alone: its batches/s is the ceiling before training waits (one source and one target
# batch per iteration).
for w in 1 "$workers"; do
  "$bin/examples/loader_throughput" "$work/source" 1024 512 "$w" 200
done
"$bin/examples/loader_throughput" "$work/target" 1024 512 "$workers" 200
echo "pretrain: backbone $backbone, device $device, $iterations iterations, $workers loader workers per domain"
UDA_RESUME_DIR="$work/resume" "$bin/pretrain" --out "$work/run" \
  --input source="$work/source" --input target="$work/target" \
  -p backbone="$backbone" -p iterations="$iterations" -p device="$device" -p workers="$workers" \
  -p log_every=1 -p checkpoint_every=0
cat "$work/run/metrics.json"; echo
"$bin/examples/train_log_summary" "$work/run/train_log.parquet"
