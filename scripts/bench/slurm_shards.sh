#!/usr/bin/env bash
# A sharded preprocess-resize on Slurm against one task, with the same CPUs per task: GTA5-layout
# synthetic images (N, default 400, at 1052x1914 as GTA5 ships them) resized to 512x1024.
#
#   bash scripts/bench/slurm_shards.sh prepare [UDA_PIPE] [N]   # generates the data once
#   bash scripts/bench/slurm_shards.sh run SHARDS [UDA_PIPE]     # one forced run of the stage
#
# Shards are whole Zarr shard files (`images_per_shard`, 64 by default; 8 here so that the N
# images make 2 tasks' worth). Time `run 1` against `run 2` side by side with a whole-process timer. Each task asks for 1 CPU,
# so 2 shards use the 2 CPUs of the loopback cluster (scripts/slurm/cluster.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work=/tmp/uda-shards-bench
mode="${1:-}"
exe() { echo "${1:-$root/target/release/uda-pipe}"; }
case "$mode" in
  prepare)
    uda="$(exe "${2:-}")"
    n="${3:-400}"
    mkdir -p "$work"
    cat >"$work/pipeline.yaml" <<YAML
executor: {slurm: {poll_interval_s: 1}}
stages:
  synth:
    kind: synth-scenes
    params: {seed: 0, height: 1052, width: 1914, n_source: $n, n_target_train: 1, n_target_val: 1}
    resources: {cpus: 2, memory_gb: 4}
  source:
    kind: preprocess-resize
    inputs: {root: synth/gta5}
    params: {dataset: gta5, size: [512, 1024], images_per_shard: 8}
    resources: {cpus: 1, memory_gb: 2}
YAML
    "$uda" run "$work/pipeline.yaml"
    ;;
  run)
    shards="${2:?shards}"
    uda="$(exe "${3:-}")"
    "$uda" run "$work/pipeline.yaml" --stage source --force --shards "$shards"
    ;;
  *)
    echo "usage: $0 prepare [UDA_PIPE] [N] | run SHARDS [UDA_PIPE]" >&2
    exit 2
    ;;
esac
