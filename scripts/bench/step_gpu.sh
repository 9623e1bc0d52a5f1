#!/usr/bin/env bash
# The training-step benchmark on a GPU machine: DeepLabV2 (and ENet) at 1024x512, tch against
# PyTorch on the same GPU in the same run. A GPU machine often has no Rust toolchain (see
# docs/gpu.md), so this runs in two halves:
#
#   scripts/bench/step_gpu.sh prepare   # here: release-build the Rust step, bundle it in .gpu/step/
#   scripts/bench/step_gpu.sh run       # there (repository root, .gpu carried): prints the table
#
# `run` points the loader at the machine's own torch (python3), prints the card, and runs each
# backbone with --device cuda in both implementations; ratio = torch/rust (> 1: Rust faster).
# Each backbone runs at fp32, bf16 (autocast; torch: torch.autocast, i.e. AMP) and bf16 with
# channels-last weights; tflops = the step's FLOPs (PyTorch's flop counter) / Rust's median time;
# torch_peak_mib = torch.cuda.max_memory_allocated of the PyTorch side.
# Options after the mode: --height 512 --width 1024 --iters 20 --warmup 5 --backbones "..."
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bundle="$root/.gpu/step"
mode="${1:-}"; shift || true
height=512 width=1024 iters=20 warmup=5 backbones="deeplabv2-resnet101 enet"
while [ $# -gt 0 ]; do
  case "$1" in
    --height) height=$2 ;; --width) width=$2 ;; --iters) iters=$2 ;; --warmup) warmup=$2 ;;
    --backbones) backbones=$2 ;;
    *) echo "step_gpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done

case "$mode" in
prepare)
  (cd "$root" && cargo build --release -p uda-models --example step_bench >&2)
  mkdir -p "$bundle"
  # Debug line tables make it ~60 MB; the device call carries at most 64 MiB in all.
  strip --strip-debug -o "$bundle/step_bench" "$root/target/release/examples/step_bench"
  cp "$root/scripts/bench/step_torch.py" "$root/crates/uda-models/tests/py/reference_models.py" "$bundle/"
  du -sh "$bundle"
  echo "bundle ready: carry .gpu and run 'bash scripts/bench/step_gpu.sh run' on the GPU machine"
  ;;
run)
  [ -x "$bundle/step_bench" ] || { echo "step_gpu.sh: $bundle/step_bench missing: run 'prepare' first and carry .gpu" >&2; exit 1; }
  torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  card=$(python3 -c 'import torch; print(torch.cuda.get_device_name(0))')
  threads=$(nproc)
  echo "card: $card; torch $(python3 -c 'import torch; print(torch.__version__)'); cpu threads=$threads"
  # The Rust binary must see CUDA through uda-models' run-time loading of libtorch_cuda.so.
  "$bundle/step_bench" --backbone enet --device cuda --height 64 --width 64 --iters 1 --warmup 0 --threads "$threads" >/dev/null
  printf '%-22s %10s %5s %3s %10s %10s %7s %7s %9s\n' backbone size prec cl rust_ms torch_ms ratio tflops torch_mib
  for b in $backbones; do
    flops=""
    for cfg in fp32:false bf16:false bf16:true; do
      p=${cfg%%:*} cl=${cfg##*:}
      args=(--backbone "$b" --height "$height" --width "$width" --iters "$iters" --warmup "$warmup" --threads "$threads" --device cuda --precision "$p" --channels-last "$cl")
      r=$("$bundle/step_bench" "${args[@]}" | grep '^RESULT')
      count=false; [ -z "$flops" ] && count=true
      t=$(python3 "$bundle/step_torch.py" "${args[@]}" --count-flops "$count" | grep '^RESULT')
      [ -z "$flops" ] && flops=$(sed -E 's/.*flops=([0-9]+).*/\1/' <<<"$t")
      rm_=$(sed -E 's/.*median_ms=([0-9.]+).*/\1/' <<<"$r")
      tm=$(sed -E 's/.*median_ms=([0-9.]+).*/\1/' <<<"$t")
      mib=$(sed -nE 's/.*peak_mib=([0-9]+).*/\1/p' <<<"$t")
      printf '%-22s %10s %5s %3s %10s %10s %7s %7s %9s\n' "$b" "${width}x${height}" "$p" "${cl:0:1}" "$rm_" "$tm" \
        "$(awk -v a="$tm" -v b="$rm_" 'BEGIN{printf "%.3f", a/b}')" \
        "$(awk -v f="$flops" -v ms="$rm_" 'BEGIN{printf "%.1f", f / (ms / 1000) / 1e12}')" "$mib"
    done
  done
  ;;
*)
  echo "usage: scripts/bench/step_gpu.sh prepare|run [--height H --width W --iters N --warmup N --backbones \"...\"]" >&2
  exit 2
  ;;
esac
