#!/usr/bin/env bash
# A real single-node Slurm cluster on loopback, for the Slurm executor's tests and benchmarks
# (tests/slurm_executor.rs). Debian's slurm-wlm 22.05 and munge, installed by
# scripts/setup-system.sh. Must run as root (it writes /etc/slurm and starts the daemons).
#
#   bash scripts/slurm/cluster.sh start    # idempotent: does nothing if sinfo already answers
#   bash scripts/slurm/cluster.sh stop
#   bash scripts/slurm/cluster.sh status
#
# The node offers this machine's CPUs and memory. Accounting: no slurmdbd; completed jobs are
# written by jobcomp/filetxt, which `sacct -c` reads (uda-pipe falls back to it when plain
# `sacct` says accounting is disabled, as it does here; real clusters have slurmdbd).
set -euo pipefail

conf=/etc/slurm/slurm.conf
state=/var/spool/slurmctld
spool=/var/spool/slurmd
logs=/var/log/slurm

write_conf() {
  local cpus mem_mb
  cpus=$(nproc)
  # Leave 1 GiB to the system.
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p /etc/slurm "$state" "$spool" "$logs"
  cat >"$conf" <<CONF
# Written by uda-pipe's scripts/slurm/cluster.sh: a loopback test cluster.
ClusterName=uda-loopback
SlurmctldHost=localhost
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$state
SlurmdSpoolDir=$spool
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
# Without cgroups (task/none) memory limits are enforced by the accounting poller: a job over its
# --mem is killed and ends OUT_OF_MEMORY, as on a real cluster.
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$logs/jobcomp.log
ReturnToService=2
SchedulerType=sched/backfill
# Fast turnaround for tests: the scheduler looks often and kills quickly after the time limit.
SchedulerParameters=sched_interval=1,bf_interval=1
MessageTimeout=10
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MinJobAge=300
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  touch "$logs/jobcomp.log" "$logs/slurmctld.log" "$logs/slurmd.log"
  chown -R slurm:slurm "$state" "$logs"
}

running() { timeout 5 sinfo -h >/dev/null 2>&1; }

start() {
  command -v slurmctld >/dev/null || { echo "slurm: slurmctld not installed (apt-get install slurm-wlm munge)" >&2; exit 1; }
  local before=""
  [ -f "$conf" ] && before="$(cat "$conf")"
  write_conf
  if running && [ "$before" = "$(cat "$conf")" ]; then
    echo "slurm: already running"
    return 0
  fi
  if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
    chmod 0400 /etc/munge/munge.key
    su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force
  fi
  pkill -x slurmctld 2>/dev/null || true
  pkill -x slurmd 2>/dev/null || true
  sleep 0.5
  /usr/sbin/slurmctld -c
  /usr/sbin/slurmd -N localhost
  for _ in $(seq 1 60); do
    if running && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then
      echo "slurm: up ($(sinfo -h -o '%c CPUs, %m MB'))"
      return 0
    fi
    sleep 0.5
  done
  echo "slurm: did not come up; see $logs/slurmctld.log and $logs/slurmd.log" >&2
  tail -5 "$logs/slurmctld.log" "$logs/slurmd.log" >&2 || true
  exit 1
}

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  echo "slurm: stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if running; then sinfo; else echo "slurm: not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
