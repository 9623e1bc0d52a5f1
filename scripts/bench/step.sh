#!/usr/bin/env bash
# One training step of ENet and DeepLabV2 (forward, CE loss, backward, SGD momentum), or with
# `--mode infer` one inference forward pass (eval mode, no gradient), in tch
# (crates/uda-models/examples/step_bench.rs, --release) against the same step in PyTorch from
# the project venv (scripts/bench/step_torch.py), same machine, same thread count. Prints the
# ms/step of each and the ratio torch/rust (> 1: Rust faster). The two alternate for --rounds
# rounds and each side reports its best median, so that load from other processes on the machine
# hits both alike.
#
#   scripts/bench/step.sh [--height 128] [--width 256] [--iters 10] [--warmup 2] [--rounds 3]
#                         [--threads $(nproc)] [--backbones "enet deeplabv2-resnet101"]
#                         [--precision fp32|bf16|fp16]   (autocast on both sides; losses fp32)
#                         [--channels-last false|true]   (NHWC weights and input on both sides)
#                         [--mode train|infer]           (a training step, or evaluate's forward pass)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
height=128 width=256 iters=10 warmup=2 rounds=3 threads=$(nproc) backbones="enet deeplabv2-resnet101" device=cpu precision=fp32 channels_last=false mode=train
while [ $# -gt 0 ]; do
  case "$1" in
    --height) height=$2 ;; --width) width=$2 ;; --iters) iters=$2 ;; --warmup) warmup=$2 ;;
    --rounds) rounds=$2 ;; --threads) threads=$2 ;; --backbones) backbones=$2 ;; --device) device=$2 ;;
    --precision) precision=$2 ;; --channels-last) channels_last=$2 ;; --mode) mode=$2 ;;
    *) echo "step.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "step.sh: $py missing: run scripts/setup.sh" >&2; exit 1; }

(cd "$root" && cargo build --release -p uda-models --example step_bench >&2)
bin="$root/target/release/examples/step_bench"
args=(--height "$height" --width "$width" --iters "$iters" --warmup "$warmup" --threads "$threads" --device "$device" --precision "$precision" --channels-last "$channels_last" --mode "$mode")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads=$threads precision=$precision channels_last=$channels_last mode=$mode"
printf '%-22s %10s %12s %12s %8s\n' backbone size rust_ms torch_ms ratio
median() { sed -E 's/.*median_ms=([0-9.]+).*/\1/'; }
for b in $backbones; do
  best_r="" best_t=""
  for _ in $(seq "$rounds"); do
    r=$("$bin" --backbone "$b" "${args[@]}" | grep '^RESULT' | median)
    t=$("$py" "$root/scripts/bench/step_torch.py" --backbone "$b" "${args[@]}" | grep '^RESULT' | median)
    best_r=$(awk -v a="$r" -v b="$best_r" 'BEGIN{print (b == "" || a < b) ? a : b}')
    best_t=$(awk -v a="$t" -v b="$best_t" 'BEGIN{print (b == "" || a < b) ? a : b}')
  done
  printf '%-22s %10s %12s %12s %8s\n' "$b" "${height}x${width}" "$best_r" "$best_t" "$(awk -v a="$best_t" -v b="$best_r" 'BEGIN{printf "%.3f", a/b}')"
done
