#!/usr/bin/env bash
# start-slurm.sh: bring up a private Slurm cluster (munged, slurmctld,
# slurmd) on localhost for cutpoint's Slurm tests. Runs as root on Debian 12
# without systemd or cgroups; installs the packages when missing. Idempotent.
#
# Everything it runs lives under SLURM_CI_DIR and touches nothing of a
# site's own install: its own slurm.conf ($D/etc/slurm.conf: export
# SLURM_CONF=$D/etc/slurm.conf to talk to it), its own munged (key, socket,
# pid, log and seed files under $D/munge), its own state, spool, log and pid
# files, and its own ports (SLURM_CI_PORT and up, not Slurm's 6817/6818).
# /etc/slurm, /etc/munge, /run/munge and a running site munged, slurmctld or
# slurmd are left alone; it refuses to start when one of its ports is taken.
#
# Env: SLURM_CI_DIR   everything above (default /var/tmp/cutpoint-slurm)
#      SLURM_CI_PORT  slurmctld's port; slurmd uses the next one, node i of
#                     several PORT+1+i (default 26817)
#      SLURM_CI_CPUS  CPUs each node advertises (default 8; may exceed nproc so
#                     that `sbatch -n 4` fits on a 2-core machine)
#      SLURM_CI_NODES number of nodes (default 1). Above 1, that many slurmd
#                     run on this host as nodes HOST-1..HOST-N, each on its
#                     own port, so that tests can lose a node (kill its
#                     slurmd and processes) while the others run on.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
D=${SLURM_CI_DIR:-/var/tmp/cutpoint-slurm}
PORT=${SLURM_CI_PORT:-26817}
CPUS=${SLURM_CI_CPUS:-8}
NNODES=${SLURM_CI_NODES:-1}
NODE=$(hostname -s)
case "$NNODES" in '' | *[!0-9]* | 0) echo "SLURM_CI_NODES=$NNODES: want a number >= 1" >&2; exit 1 ;; esac
case "$PORT" in '' | *[!0-9]*) echo "SLURM_CI_PORT=$PORT: want a port number" >&2; exit 1 ;; esac
case "$D" in /*) ;; *) echo "SLURM_CI_DIR=$D: want an absolute path" >&2; exit 1 ;; esac
PORTS=("$PORT" $((PORT + 1)))
# With several nodes a test loses one: Slurm then declares it down after
# SlurmdTimeout, and a job that used it completes only then.
SLURMD_TIMEOUT=60
if [ "$NNODES" = 1 ]; then
  NAMES=("$NODE")
  SLURMD_FILES="SlurmdSpoolDir=$D/spool
SlurmdPidFile=$D/run/slurmd.pid
SlurmdLogFile=$D/log/slurmd.log"
  NODELINES="NodeName=$NODE NodeAddr=127.0.0.1 Port=$((PORT + 1)) CPUs=$CPUS RealMemory=@MEM@ State=UNKNOWN"
else
  NAMES=()
  NODELINES=""
  for i in $(seq "$NNODES"); do
    NAMES+=("$NODE-$i")
    NODELINES+="NodeName=$NODE-$i NodeHostname=$NODE NodeAddr=127.0.0.1 Port=$((PORT + 1 + i)) CPUs=$CPUS RealMemory=@MEM@ State=UNKNOWN
"
    PORTS+=($((PORT + 1 + i)))
  done
  SLURMD_TIMEOUT=15
  SLURMD_FILES="SlurmdSpoolDir=$D/spool/%n
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmdLogFile=$D/log/slurmd-%n.log"
fi
# pidfile NAME: the pid file of the slurmd of node NAME
pidfile() { if [ "$NNODES" = 1 ]; then echo "$D/run/slurmd.pid"; else echo "$D/run/slurmd-$1.pid"; fi; }
CONF=$D/etc/slurm.conf
export SLURM_CONF=$CONF
M=$D/munge
SOCK=$M/munge.socket
say() { echo "[start-slurm] $*"; }

[ "$(id -u)" = 0 ] || { echo "start-slurm.sh must run as root" >&2; exit 1; }

have_all() { command -v slurmctld && command -v slurmd && command -v sbatch && command -v munged; } >/dev/null
if ! have_all; then
  say "installing slurmctld slurmd slurm-client munge"
  # The packages' postinst would try to start daemons; keep them from it.
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy_added=1
  fi
  apt-cache show slurmctld >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
  [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

alive() { [ -s "$1" ] && [ "$(cat /proc/"$(cat "$1")"/comm 2>/dev/null)" = "$2" ]; }

# Refuse to collide with whatever else runs here (a site's Slurm, another
# cluster): each port this cluster uses must be free, or held by its own
# daemons (a second run with everything up).
ours_up=0
for f in "$D"/run/slurmctld.pid "$D"/run/slurmd*.pid; do
  d=$(basename "$f" .pid); d=${d%%-*}
  if alive "$f" "$d"; then ours_up=1; fi
done
if [ "$ours_up" = 0 ]; then
  for p in "${PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "[start-slurm] port $p is taken by another program (a site Slurm?): refusing to start; set SLURM_CI_PORT to free ports" >&2
      exit 1
    fi
  done
fi
for d in slurmctld slurmd munged; do
  for pid in $(pgrep -x "$d" || true); do
    case " $(cat "$D"/run/*.pid "$M/munged.pid" 2>/dev/null | tr '\n' ' ') " in
    *" $pid "*) ;;
    *) say "a $d (pid $pid) not of this cluster runs here: left alone (this cluster uses its own config, munge socket and ports)" ;;
    esac
  done
done

# munge: a private key, socket, pid, log and seed file under $M, the daemon
# as the munge user (it refuses root-owned logs).
install -d -m 755 "$D"
install -d -o munge -g munge -m 755 "$M"
if [ ! -s "$M/munge.key" ]; then
  mungekey --create --keyfile="$M/munge.key" 2>/dev/null ||
    head -c 1024 /dev/urandom >"$M/munge.key"
fi
chown munge:munge "$M/munge.key"
chmod 400 "$M/munge.key"
munge_ok() { munge -S "$SOCK" -n 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1; }
if ! munge_ok; then
  say "starting munged (socket $SOCK)"
  runuser -u munge -- /usr/sbin/munged --force --socket="$SOCK" --key-file="$M/munge.key" \
    --pid-file="$M/munged.pid" --log-file="$M/munged.log" --seed-file="$M/munged.seed"
  for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
  munge_ok || { echo "munged did not come up" >&2; tail -n 20 "$M/munged.log" >&2 || true; exit 1; }
fi

mkdir -p "$D"/state "$D"/spool "$D"/log "$D"/run "$D"/etc
MEM=$(awk '/MemTotal/ {printf "%d", $2/1024*0.9}' /proc/meminfo)
# Settings and why:
#  cred_expire=10, sched/bf_interval=5: a requeued job starts again in ~15 s, not ~2 min.
#  socket=, SlurmctldPort, Port=: this cluster's own munged and ports.
#  config_overrides + CPUs=$CPUS: `sbatch -n 4` fits even on a 2-core machine.
#  proctrack/linuxproc, task/none: no cgroups needed.
#  JobRequeue=1: jobs may be requeued (the preemption path).
WANT=$(cat <<EOF2
# written by cutpoint slurm/ci/start-slurm.sh
ClusterName=cutpoint-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10,socket=$SOCK
SlurmctldPort=$PORT
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
SlurmdTimeout=$SLURMD_TIMEOUT
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
StateSaveLocation=$D/state
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmctldLogFile=$D/log/slurmctld.log
$SLURMD_FILES
SlurmctldDebug=info
SlurmdDebug=info
${NODELINES//@MEM@/$MEM}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF2
)
if [ "$(cat "$CONF" 2>/dev/null)" != "$WANT" ]; then
  say "writing $CONF"
  printf '%s\n' "$WANT" >"$CONF"
  for f in "$D"/run/slurmd*.pid "$D/run/slurmctld.pid"; do
    d=$(basename "$f" .pid); d=${d%%-*}
    if alive "$f" "$d"; then
      kill "$(cat "$f")"
      for _ in $(seq 100); do alive "$f" "$d" || break; sleep 0.1; done
    fi
  done
fi
alive "$D/run/slurmctld.pid" slurmctld || { say "starting slurmctld"; slurmctld -f "$CONF"; }
for n in "${NAMES[@]}"; do
  if ! alive "$(pidfile "$n")" slurmd; then
    say "starting slurmd for node $n"
    if [ "$NNODES" = 1 ]; then slurmd -f "$CONF"; else mkdir -p "$D/spool/$n"; slurmd -f "$CONF" -N "$n"; fi
  fi
done

for n in "${NAMES[@]}"; do
  state=""
  for i in $(seq 120); do
    state=$(sinfo -h -N -n "$n" -o '%T' 2>/dev/null || true)
    case "$state" in
      idle|mixed|allocated) break ;;
      down*|drain*) if [ $((i % 10)) = 0 ]; then scontrol update nodename="$n" state=resume || true; fi ;;
    esac
    sleep 0.5
  done
  case "$state" in
    idle|mixed|allocated) say "node $n is $state ($(sinfo -V))" ;;
    *)
      echo "[start-slurm] node $n not usable after 60 s (state '$state')" >&2
      tail -n 30 "$D"/log/*.log >&2 || true
      exit 1 ;;
  esac
done
