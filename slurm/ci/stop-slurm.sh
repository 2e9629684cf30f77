#!/usr/bin/env bash
# stop-slurm.sh: cancel the jobs of the private cluster start-slurm.sh
# started and stop its slurmd, slurmctld and munged (by their pid files
# under SLURM_CI_DIR; a site's own Slurm and munge are never touched).
# --purge also deletes the state directory, so the next start recovers no
# old jobs (a leftover requeued job would otherwise run again).
set -uo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
D=${SLURM_CI_DIR:-/var/tmp/cutpoint-slurm}
export SLURM_CONF=$D/etc/slurm.conf # squeue and scancel talk to this cluster only
alive() { [ -s "$1" ] && [ "$(cat /proc/"$(cat "$1")"/comm 2>/dev/null)" = "$2" ]; }
stop() {
  alive "$1" "$2" || return 0
  local pid; pid=$(cat "$1"); kill "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
if alive "$D/run/slurmctld.pid" slurmctld && [ -s "$SLURM_CONF" ]; then
  jobs=$(squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 30); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
  fi
fi
for f in "$D"/run/slurmd*.pid; do stop "$f" slurmd; done
stop "$D/run/slurmctld.pid" slurmctld
stop "$D/munge/munged.pid" munged
if [ "${1:-}" = --purge ]; then rm -rf "$D"; fi
echo "[stop-slurm] stopped"
