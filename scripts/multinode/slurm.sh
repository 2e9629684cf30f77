#!/usr/bin/env bash
# slurm.sh: a real Slurm cluster on the multi-host bed of bed.sh. Each bed
# host runs its own slurmd under its own hostname (a UTS namespace inside
# the host's network namespace); one slurmctld runs in a controller
# namespace of its own, on the same bridge:
#
#   cpbed-ctl  slurmctld (port 6817) and munged, eth0 = 10.231.0.10/24;
#              also the "login node" that `slurm.sh run` submits from
#   cpbed-hN   slurmd (port 6818) as node cpbed-hN, NodeAddr = the host's
#              bed address (10.231.0.1N), 4 CPUs each
#
# Everything is private to the bed: the slurm.conf, munge key, munge socket,
# state, spool, log and pid files live under $CPBED_DIR/slurm; the fixed
# ports exist only inside the bed's namespaces. A site's /etc/slurm, munged
# and Slurm daemons are never read or touched, and nothing here talks to
# anything outside the namespaces.
#
#   slurm.sh up            the bed (bed.sh up) and the cluster; waits until
#                          every node is idle (idempotent: restarts it clean)
#   slurm.sh down          stop the cluster and remove cpbed-ctl (the bed stays)
#   slurm.sh run CMD...    CMD in cpbed-ctl with SLURM_CONF set (sbatch,
#                          squeue, scontrol, ...)
#   slurm.sh kill HOST     HOST dies whole: every process in its namespace
#                          (slurmd, step daemons, ranks, NATS) gets SIGKILL
#   slurm.sh revive HOST   HOST comes back: its network (should a test have
#                          cut it) and its slurmd start again and the
#                          node returns to service (ReturnToService=2);
#                          waits until it is idle
#   slurm.sh conf          print the SLURM_CONF path
#   slurm.sh status        sinfo, or what is missing
#
# Needs root, iproute2, unshare and the Slurm and munge packages (slurmctld,
# slurmd, slurm-client, munge; make deps or slurm/ci/start-slurm.sh install
# them).
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

here=$(cd "$(dirname "$0")" && pwd)
bed=$here/bed.sh
dir=${CPBED_DIR:-/tmp/cpbed}
hosts=${CPBED_HOSTS:-3}
S=$dir/slurm
CONF=$S/etc/slurm.conf
M=$S/munge
SOCK=$M/munge.socket
ctl=cpbed-ctl
ctladdr=10.231.0.10
sw=cpbed-sw

need() {
  [ "$(id -u)" = 0 ] || { echo "slurm.sh: needs root" >&2; exit 77; }
  local c
  for c in ip nsenter unshare slurmctld slurmd sbatch munged; do
    command -v "$c" >/dev/null || { echo "slurm.sh: needs $c (slurm/ci/start-slurm.sh installs the Slurm and munge packages; make slurm-test runs it)" >&2; exit 77; }
  done
}

alive() { [ -s "$1" ] && [ "$(cat /proc/"$(cat "$1")"/comm 2>/dev/null)" = "$2" ]; }

has_ns() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# in_ns NS NAME CMD...: CMD in network namespace NS under the hostname NAME
# (a UTS namespace of its own, so Slurm sees NAME as the host's name).
# nsenter, not `ip netns exec`: that one remounts /sys, which hides the
# cgroup mounts slurmd's cgroup plugin insists on finding.
in_ns() {
  local ns=$1 name=$2
  shift 2
  nsenter --net=/run/netns/"$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$name" "$@"
}

conf() {
  # Settings and why:
  #  cred_expire=10, sched/bf_interval=5: a requeued job starts again in ~15 s.
  #  socket=: the bed's own munged.
  #  SlurmdTimeout=15: a node that died is DOWN within ~15-20 s (a no-kill
  #    job's steps on the other nodes run on).
  #  config_overrides + CPUs=4: `sbatch -N 3 -n 6` fits on a 2-core machine.
  #  proctrack/linuxproc, task/none: no cgroups needed.
  #  TmpFS per node (%n): the hosts share one /tmp, where srun --mpi=pmix
  #    would make one spmix_appdir_<uid>_<job>.<step> for every node of a
  #    step (File exists on the second).
  cat <<EOF
# written by cutpoint scripts/multinode/slurm.sh
ClusterName=cpbed
SlurmctldHost=$ctl($ctladdr)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10,socket=$SOCK
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SwitchType=switch/none
ReturnToService=2
JobRequeue=1
KillWait=10
Waittime=0
InactiveLimit=0
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=15
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
StateSaveLocation=$S/ctl/state
SlurmctldPidFile=$S/ctl/slurmctld.pid
SlurmctldLogFile=$S/ctl/slurmctld.log
SlurmdSpoolDir=$S/%n/spool
SlurmdPidFile=$S/%n/slurmd.pid
SlurmdLogFile=$S/%n/slurmd.log
TmpFS=$S/%n/tmp
SlurmctldDebug=info
SlurmdDebug=info
EOF
  local i
  for i in $(seq 1 "$hosts"); do
    echo "NodeName=cpbed-h$i NodeAddr=$("$bed" addr "$i") CPUs=4 RealMemory=2048 State=UNKNOWN"
  done
  echo "PartitionName=bed Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES"
}

# wait_idle NODE: until NODE is idle (or in use) with its slurmd running;
# a node that is down is resumed every few seconds.
wait_idle() {
  local n=$1 st="" j
  for j in $(seq 120); do
    st=$(nsenter --net=/run/netns/"$ctl" sinfo -h -N -n "$n" -o '%T' 2>/dev/null || true)
    # A slurmd that failed to start leaves the node "idle" until
    # slurmctld's first ping: it must be running too.
    alive "$S/$n/slurmd.pid" slurmd || st="slurmd not running"
    case "$st" in
    idle | mixed | allocated) return 0 ;;
    down* | drain*) if [ $((j % 10)) = 0 ]; then nsenter --net=/run/netns/"$ctl" scontrol update nodename="$n" state=resume || true; fi ;;
    esac
    sleep 0.25
  done
  echo "slurm.sh: node $n not usable after 30 s (state '$st')" >&2
  tail -n 20 "$S/ctl/slurmctld.log" "$S/$n/slurmd.log" >&2 || true
  return 1
}

# kill_ns NS: SIGKILL every process in network namespace NS.
kill_ns() {
  local pid
  for pid in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
}

down() {
  need
  if has_ns "$ctl"; then
    kill_ns "$ctl"
    ip netns del "$ctl"
  fi
  # The slurmd of each host and whatever its jobs left there. Only
  # processes inside the bed's namespaces are touched.
  local i
  for i in $(seq 1 9); do
    has_ns "cpbed-h$i" && kill_ns "cpbed-h$i"
  done
  rm -rf "$S"
  echo "slurm down"
}

up() {
  need
  "$bed" up >/dev/null
  # A clean cluster every time: a leftover state directory would bring
  # old jobs back.
  down >/dev/null
  ip netns add "$ctl"
  ip -n "$ctl" link set lo up
  ip -n "$sw" link del "$ctl" >/dev/null 2>&1 || true
  # As in bed.sh: the veth pair is made in the switch namespace, its peer
  # moved straight into the controller's; neither end touches the root
  # namespace.
  ip -n "$sw" link add "$ctl" type veth peer name eth0 netns "$ctl"
  ip -n "$sw" link set "$ctl" master cpbed-br up
  ip -n "$ctl" addr add "$ctladdr/24" dev eth0
  ip -n "$ctl" link set eth0 up

  mkdir -p "$S/etc" "$S/ctl/state"
  local i
  for i in $(seq 1 "$hosts"); do mkdir -p "$S/cpbed-h$i/spool" "$S/cpbed-h$i/tmp"; done
  conf >"$CONF"

  # munge: a key of the bed's own, its socket under $M; munged refuses
  # root-owned logs, so it runs as the munge user.
  install -d -o munge -g munge -m 755 "$M"
  mungekey --create --keyfile="$M/munge.key" 2>/dev/null || head -c 1024 /dev/urandom >"$M/munge.key"
  chown munge:munge "$M/munge.key"
  chmod 400 "$M/munge.key"
  nsenter --net=/run/netns/"$ctl" runuser -u munge -- munged --force --socket="$SOCK" --key-file="$M/munge.key" \
    --pid-file="$M/munged.pid" --log-file="$M/munged.log" --seed-file="$M/munged.seed"
  for _ in $(seq 50); do munge -S "$SOCK" -n 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 && break; sleep 0.1; done
  munge -S "$SOCK" -n | unmunge -S "$SOCK" >/dev/null || { echo "slurm.sh: munged did not come up" >&2; exit 1; }

  export SLURM_CONF=$CONF
  in_ns "$ctl" "$ctl" slurmctld -f "$CONF"
  for i in $(seq 1 "$hosts"); do
    in_ns "cpbed-h$i" "cpbed-h$i" slurmd -f "$CONF" -N "cpbed-h$i"
  done
  for i in $(seq 1 "$hosts"); do
    wait_idle "cpbed-h$i" || exit 1
  done
  echo "slurm up: slurmctld in $ctl ($ctladdr), slurmd in $(for i in $(seq 1 "$hosts"); do printf 'cpbed-h%s ' "$i"; done)($(sinfo -V)); SLURM_CONF=$CONF"
}

cmd=${1:-}
shift || true
case "$cmd" in
up) up ;;
down) down ;;
conf) echo "$CONF" ;;
run)
  need
  export SLURM_CONF=$CONF
  exec nsenter --net=/run/netns/"$ctl" "$@"
  ;;
kill)
  need
  h=${1:?slurm.sh kill HOST}
  h=cpbed-${h#cpbed-}
  has_ns "$h" || { echo "slurm.sh: no host $h" >&2; exit 2; }
  kill_ns "$h"
  ;;
revive)
  need
  h=${1:?slurm.sh revive HOST}
  h=cpbed-${h#cpbed-}
  has_ns "$h" || { echo "slurm.sh: no host $h" >&2; exit 2; }
  export SLURM_CONF=$CONF
  "$bed" heal "${h#cpbed-}"
  alive "$S/$h/slurmd.pid" slurmd || in_ns "$h" "$h" slurmd -f "$CONF" -N "$h"
  wait_idle "$h"
  ;;
status)
  if has_ns "$ctl" && [ -s "$CONF" ]; then
    SLURM_CONF=$CONF nsenter --net=/run/netns/"$ctl" sinfo -N
  else
    echo "no bed Slurm"
  fi
  ;;
*)
  sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
