#!/usr/bin/env bash
# Contrastive-training benchmark: step time and peak memory of contrastive-train against pretrain at the
# same resolution on the CPU, at two image sizes, plus the exact (unsampled) contrastive loss to
# show what the per-class caps bound.
#
#   scripts/bench/contrastive.sh [ITERATIONS] [SIZES]
#       ITERATIONS default 10; SIZES default "128x256 256x512 512x1024" (HxW); ENet, batch 1, 1 thread
#
# pretrain runs CE on the source + entropy on the target (two forward passes per step);
# contrastive-train adds the translated view and the projection head (three passes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
iters="${1:-10}"
sizes="${2:-128x256 256x512 512x1024}"
bash scripts/setup.sh >/dev/null
# --workspace: the same feature resolution as ./uda-pipe, so the cached pipeline binaries stay valid.
cargo build --release -q --workspace --bins --example bench_data
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export UDA_PROGRESS=off OMP_WAIT_POLICY=PASSIVE
common=(-p backbone=enet -p device=cpu -p threads=1 -p workers=1 -p "iterations=$iters"
        -p checkpoint_every=0 -p lambda_ent=0.005 -p grayscale=false)
run() { # name out_dir cmd...
    local name="$1" out="$2"; shift 2
    /usr/bin/time -f "%M" -o "$work/mem" "$@" --out "$out" >/dev/null 2>"$work/err" ||
        { cat "$work/err"; exit 1; }
    local ips; ips=$(python3 -c "import json;print(json.load(open('$out/metrics.json'))['iterations_per_s'])")
    printf '%-34s %8.3f s/step %8.0f MB peak\n' "$name" "$(python3 -c "print(1/$ips)")" \
        "$(( $(cat "$work/mem") / 1024 ))"
}
for size in $sizes; do
    set -- ${size/x/ }
    d="$work/data-$1x$2"
    target/release/examples/bench_data "$d" "$1" "$2" 8
    crop="[$2, $1]"
    echo "== ${1}x${2} (H x W), $iters iterations =="
    run "pretrain (CE + ent)" "$d/pre" target/release/pretrain "${common[@]}" -p "crop=$crop" \
        --input source="$d/s2t" --input target="$d/target"
    run "contrastive-train (caps 256/512)" "$d/cl" target/release/contrastive-train "${common[@]}" \
        -p "crop=$crop" --input source="$d/s2t" --input target="$d/target" \
        --input target_ts="$d/t2s" --input pseudo="$d/pseudo"
    run "contrastive-train (exact, no caps)" "$d/cl-exact" target/release/contrastive-train \
        "${common[@]}" -p "crop=$crop" -p max_anchors_per_class=null -p max_keys_per_class=null \
        --input source="$d/s2t" --input target="$d/target" \
        --input target_ts="$d/t2s" --input pseudo="$d/pseudo"
done
