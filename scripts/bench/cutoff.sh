#!/usr/bin/env bash
# What a no-op rebuild of preprocess-resize costs: the ablation pipeline at toy scale, cached,
# then preprocess-resize "rebuilt" (a copy of its binary with bytes appended: a new identity, the
# same behaviour, as after a comment-only edit that moves panic locations) and the pipeline run
# again. Prints how many stages rerun and the wall time of that rerun, beside what key chaining
# (the previous scheme, where a key hashed its upstream keys) reran: every stage below it.
#
#   scripts/bench/cutoff.sh [WORKDIR]    BIN=target/debug (default) or target/release
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${1:-$(mktemp -d)}"
BIN="$(cd "${BIN:-$ROOT/target/debug}" && pwd)"
PIPE="$BIN/uda-pipe"
mkdir -p "$WORK/rebuilt"
TOY=(--set synth.n_source=12 --set synth.n_target_train=12 --set synth.n_target_val=6
  --set iterations=2 --set synth.height=64 --set synth.width=128 --set 'size=[64, 128]'
  --set 'crop=[128, 64]')
run() { UDA_STAGE_PATH="$1" "$PIPE" run "$ROOT/pipelines/ablations.yaml" --cache "$WORK/cache" "${TOY[@]}" 2>&1; }
summary() { grep -E '^[0-9]+ ran, ' | tail -1; }

echo "== first run (everything computed), binaries from $BIN"
t0=$(date +%s.%N); run "$BIN" | summary; t1=$(date +%s.%N)
python3 -c "print(f'   {($t1-$t0):.1f} s')"

cp "$BIN/preprocess-resize" "$WORK/rebuilt/preprocess-resize"
printf 'no-op rebuild' >> "$WORK/rebuilt/preprocess-resize"
total=$("$PIPE" dag -f "$ROOT/pipelines/ablations.yaml" --cache "$WORK/cache" "${TOY[@]}" | wc -l)
below=$("$PIPE" dag -f "$ROOT/pipelines/ablations.yaml" --cache "$WORK/cache" "${TOY[@]}" \
  | python3 -c '
import sys
lines = [l.rstrip("\n") for l in sys.stdin if l.strip()]
ids = [l.split(" [")[0] for l in lines]
kinds = {l.split(" [")[0]: l.split(" [")[1].split("]")[0] for l in lines}
deps = {}
for l in lines:
    node = l.split(" [")[0]
    rhs = l.split("<-", 1)[1] if "<-" in l else ""
    srcs = [p.split(": ", 1)[1].strip() for p in rhs.split(", ") if ": " in p]
    deps[node] = [d for d in ids if d in srcs]
hit = {n for n in ids if kinds[n] == "preprocess-resize"}
changed = True
while changed:
    changed = False
    for n in ids:
        if n not in hit and any(d in hit for d in deps[n]):
            hit.add(n); changed = True
print(len(hit))')
echo "== after a no-op rebuild of preprocess-resize"
echo "   key chaining (before): $below of $total stages rerun (preprocess-resize and everything below it)"
t0=$(date +%s.%N); out=$(run "$WORK/rebuilt:$BIN"); t1=$(date +%s.%N)
echo "   content keys (now):    $(echo "$out" | summary)"
python3 -c "print(f'   rerun wall time {($t1-$t0):.1f} s')"
echo "$out" | grep -c 'came out as before' | sed 's/^/   stages decided cached after their upstream reran: /'
