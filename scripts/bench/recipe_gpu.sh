#!/usr/bin/env bash
# The real-data recipe (pipelines/gta5-cityscapes.yaml) on a GPU machine, at full image sizes and
# few iterations, to measure what each stage costs there; plus the training-step benchmark
# (step_gpu.sh: tch vs PyTorch on the same card) and the CPU/CUDA agreement of every backbone's
# logits, the three losses and their gradients (crates/uda-train/examples/device_parity.rs, with
# scripts/bench/device_parity_torch.py as PyTorch's yardstick). The GPU machine has no Rust
# toolchain and no datasets, so this runs in two halves:
#
#   scripts/bench/recipe_gpu.sh prepare   # here: strip + pack the release binaries into .gpu/
#   scripts/bench/recipe_gpu.sh run       # there (repository root, .gpu carried): prints tables
#
# `run` generates synth-scenes data in the real GTA5 / Cityscapes layouts at 2048×1024, makes
# torchvision-named ResNet-101 weights with the machine's own torchvision (random, BatchNorm
# statistics gathered on noise: timing does not depend on the values), runs every stage of the
# recipe with its real sizes and resources through `uda-pipe run`, and prints per-stage wall time
# and, for the trainings, the median seconds per iteration from train_log.parquet (first 10
# iterations, cuDNN autotuning, left out). Extrapolating to the real dataset sizes and 30k
# iterations is then arithmetic (docs/real-data.md).
#
# Knobs (environment): RECIPE_ITERS (200), RECIPE_N_SOURCE (100), RECIPE_N_TARGET (100),
# RECIPE_N_VAL (50), RECIPE_HEIGHT/RECIPE_WIDTH of the generated images (1024/2048),
# RECIPE_PARTS (which of "step parity recipe" to run; all by default),
# RECIPE_DEVICE (cuda), RECIPE_LR (1e-6: the random trunk with frozen BatchNorm diverges at the
# paper's 2.5e-4, and the learning rate does not change what a step costs), RECIPE_SIZES (extra
# --set lines for a CPU dry run), RECIPE_WORK (/tmp/recipe), OUT (where logs go; default
# /tmp/recipe_out).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bundle="$root/.gpu/recipe"
stages="synth-scenes preprocess-resize fda-translate-cache pretrain pseudolabel-dump contrastive-train evaluate"

case "${1:-}" in
prepare)
  set -e
  (cd "$root" && cargo build --release --workspace --bins >&2)
  mkdir -p "$bundle/bin"
  for b in uda-pipe $stages; do strip --strip-all -o "$bundle/bin/$b" "$root/target/release/$b"; done
  # ~190 MB stripped (uda-pipe holds polars for `report`); xz brings it to ~25 MB, under the
  # 64 MiB a device call carries.
  tar -C "$bundle/bin" -cf - . | xz -9 -T0 >"$bundle/bin.tar.xz"
  rm -rf "$bundle/bin"
  bash "$root/scripts/bench/step_gpu.sh" prepare >&2
  (cd "$root" && cargo build --release -p uda-train --example device_parity >&2)
  strip --strip-all -o "$bundle/device_parity" "$root/target/release/examples/device_parity"
  du -sh "$root/.gpu"
  ;;
run)
  out="${OUT:-/tmp/recipe_out}"; mkdir -p "$out"
  work="${RECIPE_WORK:-/tmp/recipe}"; rm -rf "$work"; mkdir -p "$work/bin"
  device="${RECIPE_DEVICE:-cuda}" iters="${RECIPE_ITERS:-200}"
  python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
    "$bundle/bin.tar.xz" "$work/bin" || exit 1
  torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "card: $(python3 -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")');" \
    "torch $(python3 -c 'import torch; print(torch.__version__)'); cores $(nproc)"
  parts="${RECIPE_PARTS:-step parity recipe}"
  if [[ " $parts " == *" step "* ]]; then
    timeout 240 bash "$root/scripts/bench/step_gpu.sh" run --iters 20 --warmup 5 2>&1 | tee "$out/step.txt"
  fi
  if [[ " $parts " == *" parity "* ]]; then
    timeout 240 "$bundle/device_parity" --device "$device" 2>&1 | tee "$out/parity.txt"
    echo "PyTorch's reference models, same protocol (the yardstick):"
    timeout 240 python3 "$root/scripts/bench/device_parity_torch.py" \
      "$root/crates/uda-models/tests/py" 2>&1 | tee "$out/parity_torch.txt"
  fi
  [[ " $parts " == *" recipe "* ]] || exit 0
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$out/gpu_mem.txt" &
    smi=$!
  fi
  t0=$(date +%s.%N)
  "$work/bin/synth-scenes" --out "$work/synth" \
    --param "height=${RECIPE_HEIGHT:-1024}" --param "width=${RECIPE_WIDTH:-2048}" \
    --param "n_source=${RECIPE_N_SOURCE:-100}" --param "n_target_train=${RECIPE_N_TARGET:-100}" \
    --param "n_target_val=${RECIPE_N_VAL:-50}" >/dev/null 2>"$out/synth.log" || { tail "$out/synth.log"; exit 1; }
  echo "synth-scenes: $(python3 -c "import time; print(f'{time.time()-$t0:.1f}')") s"
  python3 "$root/scripts/random_resnet101_weights.py" "$work/resnet101.safetensors" || exit 1
  sets=(--set "gta5_root=$work/synth/gta5" --set "cityscapes_root=$work/synth/cityscapes"
        --set "imagenet_weights=$work/resnet101.safetensors" --set "iterations=$iters"
        --set "checkpoint_every=1000000" --set "device=$device" --set "lr=${RECIPE_LR:-1e-6}")
  for s in ${RECIPE_SIZES:-}; do sets+=(--set "$s"); done
  UDA_STAGE_PATH="$work/bin" "$work/bin/uda-pipe" run -k "$root/pipelines/gta5-cityscapes.yaml" \
    --cache "$work/cache" "${sets[@]}" 2>&1 | grep -v '^\s*$' | tee "$out/run.log" | grep -E '✓|✗|error|Error' 
  rc=${PIPESTATUS[0]}
  [ -n "${smi:-}" ] && kill "$smi" 2>/dev/null
  UDA_STAGE_PATH="$work/bin" "$work/bin/uda-pipe" status -f "$root/pipelines/gta5-cityscapes.yaml" \
    --cache "$work/cache" "${sets[@]}" 2>&1 | tee "$out/status.txt"
  python3 - "$work/cache/latest/gta5-cityscapes" "$out" <<'EOF'
# Per training: median seconds per iteration over the logged windows after the first 10
# iterations (train_log.parquet, pyarrow where present; else metrics.json's mean, warm-up in).
import json, os, statistics, sys
latest, out = sys.argv[1], sys.argv[2]
print(f"{'stage':<14} {'iterations':>10} {'s/it (median)':>14} {'s/it x 30k (h)':>15} {'data wait':>10}")
for stage in ["source_only", "fda_only", "pretrain", "ours"]:
    d = os.path.join(latest, stage)
    if not os.path.exists(os.path.join(d, "metrics.json")):
        print(f"{stage:<14} missing"); continue
    m = json.load(open(os.path.join(d, "metrics.json")))
    try:
        import pyarrow.parquet as pq
        t = pq.read_table(os.path.join(d, "train_log.parquet")).to_pydict()
        per_it = [s / w for i, w, s in zip(t["iteration"], t["window"], t["step_s"]) if i - w >= 10]
        spi = statistics.median(per_it)
    except Exception:
        spi = 1.0 / m["iterations_per_s"]
    print(f"{stage:<14} {m['iterations']:>10} {spi:>14.4f} {spi * 30000 / 3600:>15.2f} {m['data_wait_fraction']:>10.4f}")
mem = os.path.join(out, "gpu_mem.txt")
if os.path.exists(mem):
    vals = [int(v) for v in open(mem).read().split() if v.strip().isdigit()]
    if vals:
        print(f"peak GPU memory used (nvidia-smi, 0.5 s samples): {max(vals)} MiB")
EOF
  exit "$rc"
  ;;
*)
  echo "usage: scripts/bench/recipe_gpu.sh prepare|run" >&2
  exit 2
  ;;
esac
