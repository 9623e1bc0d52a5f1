#!/usr/bin/env bash
# The cost of following jobs on Slurm: one batched `sacct` call for N jobs (what uda-pipe's Slurm
# executor does per poll interval) against one call per job (what a naive poller would do).
#
#   bash scripts/bench/slurm_poll.sh submit [N]   # submits N trivial jobs (default 200), waits, writes /tmp/uda-poll-ids
#   bash scripts/bench/slurm_poll.sh batched      # one sacct call for all of them
#   bash scripts/bench/slurm_poll.sh per-job      # one sacct call per job
#
# Time the last two side by side with any whole-process timer (e.g. hyperfine, or
# /usr/bin/time in a loop). Without slurmdbd (the loopback test cluster, scripts/slurm/cluster.sh),
# sacct reads the jobcomp log with -c, as uda-pipe does there.
set -euo pipefail
ids_file=/tmp/uda-poll-ids
sacct_mode=()
probe="$(sacct -n -j 1 2>&1 || true)"
if [[ "$probe" == *"accounting storage is disabled"* ]]; then
  sacct_mode=(-c)
fi
fields=JobID,State,ExitCode,Elapsed,MaxRSS,NodeList
case "${1:-}" in
  submit)
    n="${2:-200}"
    : >"$ids_file"
    for _ in $(seq 1 "$n"); do
      sbatch --parsable --mem=16M --job-name=uda-poll-bench -o /dev/null --wrap true >>"$ids_file"
    done
    while [ -n "$(squeue -h --name uda-poll-bench)" ]; do sleep 1; done
    echo "submitted and finished $(wc -l <"$ids_file") jobs; ids in $ids_file"
    ;;
  batched)
    sacct "${sacct_mode[@]}" -n -P -o "$fields" -j "$(paste -sd, "$ids_file")" | wc -l
    ;;
  per-job)
    while read -r id; do
      sacct "${sacct_mode[@]}" -n -P -o "$fields" -j "$id"
    done <"$ids_file" | wc -l
    ;;
  *)
    echo "usage: $0 submit [N] | batched | per-job" >&2
    exit 2
    ;;
esac
