#!/usr/bin/env bash
# Scheduling overhead of the Slurm executor against the local one, on the default pipeline at
# toy scale (the overrides of tests/toy/mod.rs): the whole run's wall time with each executor,
# and per stage on Slurm the time from sbatch to the job's start (queue + node set-up) and from
# the job's end to the entry's commit (the poll interval, the manifest, the rename).
#
#   bash scripts/bench/slurm_overhead.sh [UDA_PIPE] [POLL_S]
#
# UDA_PIPE defaults to target/release/uda-pipe; the stage binaries beside it are used. Needs a
# Slurm cluster (scripts/slurm/cluster.sh start gives the loopback one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exe="${1:-$root/target/release/uda-pipe}"
poll="${2:-1}"
work="$(mktemp -d)"
toy=(--set synth.n_source=12 --set synth.n_target_train=12 --set synth.n_target_val=6
  --set iterations=2 --set synth.height=64 --set synth.width=128 --set 'size=[64, 128]'
  --set 'crop=[128, 64]')
run() {
  local cache="$1"
  shift
  local t0 t1
  t0=$(date +%s.%N)
  "$exe" run "$root/pipeline.yaml" --cache "$cache" "${toy[@]}" "$@" >"$cache.log" 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
echo "local: $(run "$work/local" --executor local) s"
echo "slurm: $(run "$work/slurm" --executor slurm --slurm-opt "poll_interval_s=$poll") s (poll every $poll s)"
python3 - "$work/slurm" <<'PY'
import json, os, statistics, sys
cache = sys.argv[1]
queued, commit = [], []
for key in os.listdir(os.path.join(cache, "entries")):
    p = os.path.join(cache, "entries", key, "entry.json")
    e = json.load(open(p))
    s = e["scheduler"]
    queued.append(s["queued_s"])
    commit.append(os.stat(p).st_mtime - s["ended_unix_ms"] / 1000)
def show(name, v):
    print(f"{name}: median {statistics.median(v):.2f} s, min {min(v):.2f}, max {max(v):.2f} over {len(v)} stages")
show("submit to start", queued)
show("end to commit", commit)
PY
rm -rf "$work"
