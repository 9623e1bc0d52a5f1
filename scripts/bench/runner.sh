#!/usr/bin/env bash
# Benchmark of the uda-pipe runner's no-op overhead.
#
#   scripts/bench/runner.sh [WORKDIR]      (default WORKDIR: a fresh temp folder)
#
# 1. A pipeline whose external input is a folder of 25,000 small files (250 folders x 100),
#    consumed by one trivial test stage: times the first run (hashes every file once) and the
#    no-op rerun (stat walk + memo, nothing hashed, nothing run).
# 2. The same rerun after touching one file (one file re-hashed, the stage reruns).
# 3. Runner overhead per cached stage: no-op reruns of pipelines of 1 and 201 cached stages.
# Uses hyperfine when installed, else a loop timed with `date +%s.%N`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"
RUNS="${RUNS:-10}"

echo "== building uda-pipe and the test stages (release)"
cargo build --release --quiet --workspace --bins --manifest-path "$ROOT/Cargo.toml"  # --workspace: keeps the cached pipeline binaries valid
TARGET="$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET/release"
export UDA_STAGE_PATH="$BIN"
PIPE="$BIN/uda-pipe"

# mean and min wall time (ms) of RUNS executions of "$@"
measure() {
  if command -v hyperfine >/dev/null; then
    hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/h.json" "$*" >/dev/null
    python3 -c 'import json; r=json.load(open("'"$WORK/h.json"'"))["results"][0]; print(f"{r[\"mean\"]*1000:.1f} {r[\"min\"]*1000:.1f}")'
  else
    "$@" >/dev/null 2>&1
    local times=()
    for _ in $(seq "$RUNS"); do
      local t0 t1
      t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
      times+=("$(python3 -c "print(($t1-$t0)*1000)")")
    done
    python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print(f'{sum(v)/len(v):.1f} {min(v):.1f}')" "${times[@]}"
  fi
}

echo "== creating 25,000 small files in $WORK/data"
if [ ! -f "$WORK/data/.done" ]; then
  python3 - "$WORK/data" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(250):
    p = os.path.join(root, f"d{d:03d}")
    os.makedirs(p, exist_ok=True)
    for f in range(100):
        with open(os.path.join(p, f"f{f:03d}.txt"), "w") as fh:
            fh.write(f"file {d}/{f} " + "x" * 64 + "\n")
open(os.path.join(root, ".done"), "w").close()
PY
  sleep 1   # let the files age past the racy-timestamp window
fi

cat > "$WORK/dataset.yaml" <<'YAML'
stages:
  scan:
    kind: uda-test-slow
    inputs: {src: ./data}
    params: {millis: 0, chunks: 1}
YAML
rm -rf "$WORK/cache"
t0=$(date +%s.%N); "$PIPE" run "$WORK/dataset.yaml" >/dev/null 2>&1; t1=$(date +%s.%N)
first=$(python3 -c "print(f'{($t1-$t0)*1000:.0f}')")
read -r mean min < <(measure "$PIPE" run "$WORK/dataset.yaml")
echo "25k-file dataset: first run ${first} ms (hashes all files); no-op rerun mean ${mean} ms, min ${min} ms"
# Reference on the same machine: just walking and stat-ing the folder in Python (os.walk + os.stat),
# the least any change detector (DVC's state db included) must do before any hashing.
read -r wmean wmin < <(measure python3 -c "import os
for r, d, f in os.walk('$WORK/data'):
    [os.stat(os.path.join(r, x)) for x in f]")
echo "reference: python os.walk + os.stat of the folder mean ${wmean} ms, min ${wmin} ms -> uda-pipe no-op / walk = $(python3 -c "print(f'{$mean/$wmean:.2f}')")"

touch "$WORK/data/d100/f050.txt"; sleep 0.2
t0=$(date +%s.%N); "$PIPE" run "$WORK/dataset.yaml" >/dev/null 2>&1; t1=$(date +%s.%N)
echo "after touching one file (same content): $(python3 -c "print(f'{($t1-$t0)*1000:.0f}')") ms (1 file re-hashed, content unchanged so nothing reruns)"

gen_pipeline() { # N stages in a chain-free fan: each a cached uda-test-gen
  local n=$1 f=$2
  { echo "stages:"; for i in $(seq 1 "$n"); do printf "  s%d:\n    kind: uda-test-gen\n    params: {seed: %d, count: 1}\n" "$i" "$i"; done; } > "$f"
}
gen_pipeline 1 "$WORK/one.yaml"
gen_pipeline 201 "$WORK/many.yaml"
"$PIPE" run "$WORK/one.yaml" >/dev/null 2>&1
"$PIPE" run "$WORK/many.yaml" >/dev/null 2>&1
read -r m1 _ < <(measure "$PIPE" run "$WORK/one.yaml")
read -r m201 _ < <(measure "$PIPE" run "$WORK/many.yaml")
per=$(python3 -c "print(f'{($m201-$m1)/200:.2f}')")
echo "no-op rerun: 1 cached stage ${m1} ms, 201 cached stages ${m201} ms -> ${per} ms per cached stage"
echo "(machine: $(nproc) CPUs; work folder $WORK)"
