#!/usr/bin/env bash
# slurm/test.sh: cutpoint's checks against real Slurm daemons on localhost
# (`make slurm-test`; CI runs it as root). It restarts a clean one-node
# cluster of its own (slurm/ci/start-slurm.sh: private slurm.conf, munged
# and ports under SLURM_CI_DIR; a site's Slurm and munge are left alone),
# runs the cases below and stops that cluster at the end, pass or fail. Each job's result is checked by its
# digest against `cutpoint run` of the same job.
#
#   spawner   the srun spawner's own test, inside a 4-task allocation
#   plain     sbatch -n 4 completes with the reference digest
#   usr1      scancel --signal=USR1 --batch while running: a final cut is
#             committed, the job requeues (Restarts >= 1) and completes
#   kill      one rank task SIGKILLed after a cut: recovered in place
#   hang      one rank task SIGSTOPped: found silent, killed, recovered
#   bad       no CUTPOINT_STORE, a missing one, a read-only one, too few
#             tasks for the store's job: FAILED at once, nothing requeued
#   mpi       an MPI job (examples/mpi/heat2d_mpi.c, Open MPI, built with
#             mpicc on libcutpoint) as `cutpoint run --mpi -- srun
#             --mpi=pmix -n 4 ...` inside sbatch: undisturbed, and with one
#             MPI task SIGKILLed after a cut (srun ends the step, the
#             whole world is relaunched from the latest cut); both end
#             with the Go heat2d's digest. Skipped without mpicc or
#             Slurm's pmix plugin (`srun --mpi=list`).
#   nodeloss  on a two-node cluster (two slurmd on this host), the node
#             that is not the batch host dies (its slurmd, step daemons and
#             ranks SIGKILLed): its ranks come back on the other node
#   site      slurm/site-check.sh: with a site's munged and Slurm running
#             (a stand-in on the default munge socket and ports 6817/6818,
#             a job in it), scripts/deps.sh and this cluster's whole cycle
#             leave them untouched (same processes, job running, configs
#             unchanged)
#   timelimit (not by default: 3 to 5 minutes) --time=2 --signal=B:USR1@60:
#             the warning before the time limit requeues the job
#
# Env: SLURM_TEST_CASES (default "spawner plain usr1 kill hang bad mpi nodeloss site"),
#      SLURM_TEST_STEPS / SLURM_TEST_SIZE (heat2d job, default 20000 / 128),
#      SLURM_TEST_KEEP=1 keeps the work directory and the cluster.
set -euo pipefail
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The private cluster of slurm/ci/start-slurm.sh: every sbatch, srun,
# scontrol and scancel here (and in the jobs) talks to it, never to a
# site's own Slurm.
export SLURM_CONF=${SLURM_CI_DIR:-/var/tmp/cutpoint-slurm}/etc/slurm.conf
CASES=${SLURM_TEST_CASES:-spawner plain usr1 kill hang bad mpi nodeloss site}
STEPS=${SLURM_TEST_STEPS:-20000}
SIZE=${SLURM_TEST_SIZE:-128}
RANKS=4
JOBFLAGS=(--steps "$STEPS" --size "$SIZE" --interval 1s)

[ "$(id -u)" = 0 ] || { echo "slurm/test.sh must run as root (it starts slurmctld, slurmd and munged)" >&2; exit 1; }
W=$(mktemp -d /var/tmp/cutpoint-slurm-test.XXXXXX)
ro_mounted=""
t0=$(date +%s)
log() { echo "[slurm-test +$(($(date +%s) - t0))s] $*"; }

cleanup() {
  local rc=$?
  if [ -n "$ro_mounted" ]; then umount "$ro_mounted" 2>/dev/null || true; fi
  if [ "${SLURM_TEST_KEEP:-0}" = 1 ]; then
    log "kept: work directory $W, cluster running"
  else
    bash "$ROOT/slurm/ci/stop-slurm.sh" >/dev/null 2>&1 || true
    rm -rf "$W"
  fi
  if [ "$rc" = 0 ]; then log "all cases passed"; else log "FAILED"; fi
  exit "$rc"
}
trap cleanup EXIT

# fail JOBID MESSAGE: print what is needed to see why, then stop.
fail() {
  local j=$1
  shift
  echo "=== FAIL: $*" >&2
  if [ -n "$j" ]; then
    echo "--- scontrol show job $j" >&2
    scontrol show job "$j" >&2 || true
    echo "--- output of job $j" >&2
    cat "$W/job-$j.out" >&2 2>/dev/null || echo "(no output file)" >&2
  fi
  echo "--- slurmctld log (last 20 lines)" >&2
  tail -n 20 "${SLURM_CI_DIR:-/var/tmp/cutpoint-slurm}/log/slurmctld.log" >&2 2>/dev/null || true
  exit 1
}

field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# wait_end JOBID SECONDS: until the job reached a final state.
wait_end() {
  local j=$1 limit=$2 st
  for _ in $(seq "$limit"); do
    st=$(field "$j" JobState)
    case "$st" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) return 0 ;;
    esac
    sleep 1
  done
  fail "$j" "job not finished after ${limit}s (state $(field "$j" JobState))"
}

# wait_for JOBID PATTERN SECONDS: until the job's output matches.
wait_for() {
  local j=$1 pat=$2 limit=$(($3 * 5))
  for _ in $(seq "$limit"); do
    if grep -qE "$pat" "$W/job-$j.out" 2>/dev/null; then return 0; fi
    case "$(field "$j" JobState)" in COMPLETED | FAILED | CANCELLED) fail "$j" "job ended before its output showed /$pat/" ;; esac
    sleep 0.2
  done
  fail "$j" "no /$pat/ in the job's output after $3s"
}

# submit STORE SBATCH-ARGS... -- JOB-FLAGS...: prints the job id.
submit() {
  local store=$1
  shift
  local sb=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do sb+=("$1"); shift; done
  shift
  if [ -n "$store" ]; then
    CUTPOINT_STORE=$store sbatch --parsable -o "$W/job-%j.out" "${sb[@]}" "$ROOT/slurm/cutpoint.sbatch" "$@"
  else
    env -u CUTPOINT_STORE sbatch --parsable -o "$W/job-%j.out" "${sb[@]}" "$ROOT/slurm/cutpoint.sbatch" "$@"
  fi
}

# check_done JOBID RESTARTS-TEST: COMPLETED with the reference digest.
check_done() {
  local j=$1 want_restarts=$2 got
  [ "$(field "$j" JobState)" = COMPLETED ] || fail "$j" "job state $(field "$j" JobState), want COMPLETED"
  got=$(sed -n 's/^result \([0-9a-f]*\)$/\1/p' "$W/job-$j.out" | tail -n 1)
  [ "$got" = "$REF" ] || fail "$j" "digest '$got', want $REF (cutpoint run)"
  local r
  r=$(field "$j" Restarts)
  case "$want_restarts" in
  0) [ "$r" = 0 ] || fail "$j" "Restarts=$r, want 0" ;;
  1+) [ "${r:-0}" -ge 1 ] || fail "$j" "Restarts=$r, want >= 1" ;;
  esac
}

# rank_pid JOBID RANK: pid of the rank's task in the job's first step of
# ranks (cutpoint.sbatch's NATS step, named cutpoint-nats, comes first).
rank_pid() {
  local nats
  nats=$(squeue -h -s -j "$1" -o '%i %j' 2>/dev/null | awk '$2 == "cutpoint-nats" { n = split($1, a, "."); print a[n]; exit }')
  scontrol listpids "$1" 2>/dev/null | awk -v r="$2" -v nats="${nats:--}" '$3 ~ /^[0-9]+$/ && $3 != nats && $5 == r { print $1; exit }'
}

log "building cutpoint"
mkdir -p "$W/bin"
(cd "$ROOT" && go build -o "$W/bin/cutpoint" ./cmd/cutpoint)
export PATH=$W/bin:$PATH
case " $CASES " in *" spawner "*) (cd "$ROOT" && go test -c -o "$W/bin/launch.test" ./internal/launch) ;; esac

log "restarting a clean one-node Slurm"
bash "$ROOT/slurm/ci/stop-slurm.sh" --purge >/dev/null
bash "$ROOT/slurm/ci/start-slurm.sh"

has() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }
if has plain || has usr1 || has kill || has hang || has nodeloss; then
  log "reference: cutpoint run --ranks $RANKS ${JOBFLAGS[*]}"
  REF=$(cutpoint run --ranks "$RANKS" --store "$W/ref" "${JOBFLAGS[@]}" 2>"$W/ref.err" | sed -n 's/^result //p')
  [ -n "$REF" ] || { cat "$W/ref.err" >&2; fail "" "cutpoint run printed no result"; }
  log "reference digest $REF"
fi

if has spawner; then
  log "case spawner: the srun spawner's test in a 4-task allocation"
  j=$(sbatch --parsable -n 4 -o "$W/job-%j.out" --wrap "CUTPOINT_SLURM_TEST=1 $W/bin/launch.test -test.run TestSrunInAllocation -test.v")
  wait_end "$j" 120
  [ "$(field "$j" JobState)" = COMPLETED ] && grep -q '^--- PASS: TestSrunInAllocation' "$W/job-$j.out" ||
    fail "$j" "the spawner's test failed"
  log "case spawner: passed"
fi

if has plain; then
  log "case plain: sbatch -n $RANKS"
  mkdir -p "$W/plain"
  j=$(submit "$W/plain" -n "$RANKS" -- "${JOBFLAGS[@]}")
  wait_end "$j" 180
  check_done "$j" 0
  log "case plain: passed (job $j)"
fi

if has usr1; then
  log "case usr1: scancel --signal=USR1 --batch while running"
  mkdir -p "$W/usr1"
  j=$(submit "$W/usr1" -n "$RANKS" -- "${JOBFLAGS[@]}")
  wait_for "$j" 'cut committed.*component=coordinator' 120
  scancel --signal=USR1 --batch "$j"
  log "case usr1: USR1 sent to job $j"
  wait_end "$j" 240
  check_done "$j" 1+
  grep -q 'final cut committed; requeueing' "$W/job-$j.out" || fail "$j" "no final cut before the requeue"
  grep -q 'preempted: final cut [0-9]* at step [0-9]* committed' "$W/job-$j.out" || fail "$j" "the coordinator did not report the final cut"
  grep -q 'the store holds the job: restoring it' "$W/job-$j.out" || fail "$j" "the requeued run did not restore"
  log "case usr1: passed (job $j, Restarts=$(field "$j" Restarts))"
fi

# kill_case NAME SIGNAL EXPECT...: signal rank 1's task after the first cut.
kill_case() {
  local name=$1 sig=$2 j pid p
  shift 2
  mkdir -p "$W/$name"
  j=$(submit "$W/$name" -n "$RANKS" -- "${JOBFLAGS[@]}")
  wait_for "$j" 'cut committed.*component=coordinator' 120
  pid=$(rank_pid "$j" 1)
  [ -n "$pid" ] || fail "$j" "no pid for rank 1 in scontrol listpids"
  kill "-$sig" "$pid"
  log "case $name: SIG$sig sent to rank 1 (pid $pid) of job $j"
  wait_end "$j" 240
  check_done "$j" 0
  for p in "$@"; do grep -qE "$p" "$W/job-$j.out" || fail "$j" "no /$p/ in the output"; done
  grep -q 'recovery-finished' "$W/job-$j.out" || fail "$j" "no recovery"
  log "case $name: passed (job $j)"
}
if has kill; then
  log "case kill: SIGKILL one rank task"
  kill_case kill KILL 'task 1: Killed'
fi
if has hang; then
  log "case hang: SIGSTOP one rank task"
  kill_case hang STOP 'rank-lost.*rank=1: silent' 'msg="killed rank" component=srun rank=1 ' 'task 1: Killed'
fi

if has bad; then
  log "case bad: bad input fails early"
  mkdir -p "$W/bad-rw" "$W/bad-ro" "$W/bad-few"
  ro=$W/bad-ro
  if mount --bind "$W/bad-rw" "$ro" 2>/dev/null && mount -o remount,ro,bind "$ro" 2>/dev/null; then
    ro_mounted=$ro
  else
    # No mount permission: sysfs takes no new files, not even from root.
    ro=/sys/kernel
    log "case bad: no bind mount here; $ro stands in for a read-only store"
  fi
  cutpoint run --ranks 4 --steps 100 --size 32 --store "$W/bad-few" --job four >/dev/null 2>"$W/bad-few.err" ||
    { cat "$W/bad-few.err" >&2; fail "" "could not make the 4-rank store"; }
  declare -A want
  j=$(submit "" -n "$RANKS" -- --steps 100); want[$j]='CUTPOINT_STORE is not set'
  j=$(submit "$W/missing" -n "$RANKS" -- --steps 100); want[$j]="CUTPOINT_STORE=$W/missing: no such directory"
  j=$(submit "$ro" -n "$RANKS" -- --steps 100); want[$j]="CUTPOINT_STORE=$ro is not writable"
  j=$(submit "$W/bad-few" -n 2 -- --steps 100 --size 32 --job four); want[$j]='job "four" has 4 ranks in the store, this run has 2'
  for j in "${!want[@]}"; do
    wait_end "$j" 120
    [ "$(field "$j" JobState)" = FAILED ] || fail "$j" "state $(field "$j" JobState), want FAILED"
    [ "$(field "$j" Restarts)" = 0 ] || fail "$j" "requeued (Restarts=$(field "$j" Restarts))"
    grep -qF "${want[$j]}" "$W/job-$j.out" || fail "$j" "no message '${want[$j]}'"
    # No rank was started and nothing requeued (the job's own NATS step,
    # started before the coordinator's checks, is stopped with it: its
    # srun lines are not the ranks').
    if grep -q 'job-starting\|rank started\|requeueing' "$W/job-$j.out"; then fail "$j" "a bad job went on to start ranks or requeue"; fi
  done
  sleep 2 # a requeue would show as PENDING again
  for j in "${!want[@]}"; do
    [ "$(field "$j" JobState)" = FAILED ] || fail "$j" "state changed to $(field "$j" JobState)"
  done
  log "case bad: passed (jobs ${!want[*]})"
fi

if has mpi; then
  if ! command -v mpicc >/dev/null; then
    log "case mpi: skipped (no mpicc; scripts/deps.sh installs Open MPI)"
  elif ! srun --mpi=list 2>&1 | grep -qw pmix; then
    log "case mpi: skipped (this Slurm has no pmix plugin: $(srun --mpi=list 2>&1 | tr '\n' ' '))"
  else
    log "case mpi: cutpoint run --mpi -- srun --mpi=pmix (Open MPI $(mpirun --version 2>/dev/null | sed -n 's/.*Open MPI) //p' | head -n 1), whole-world relaunch; $(srun --mpi=list 2>&1 | tr '\n' ' ')"
    (cd "$ROOT" && go build -buildmode=c-shared -o "$W/bin/libcutpoint.so" ./cmd/libcutpoint)
    rm -f "$W/bin/libcutpoint.h"
    mpicc -std=c99 -O2 -ffp-contract=off -Wall -Werror -I"$ROOT/cmd/libcutpoint/include" -I"$ROOT/examples/c" \
      -o "$W/bin/heat2d_mpi" "$ROOT/examples/mpi/heat2d_mpi.c" "$ROOT/examples/c/sha256.c" \
      -L"$W/bin" -lcutpoint -Wl,-rpath,"$W/bin" -lm
    # 64x64 for 20000 steps paced at 100 us a step: a few seconds, cuts
    # every 200 steps, so several commit before the kill and after it.
    MSIZE=64 MSTEPS=20000
    MREF=$(cutpoint run --ranks "$RANKS" --store "$W/ref-mpi" --size "$MSIZE" --steps "$MSTEPS" 2>"$W/ref-mpi.err" | sed -n 's/^result //p')
    [ -n "$MREF" ] || { cat "$W/ref-mpi.err" >&2; fail "" "cutpoint run printed no result"; }
    # Open MPI ranks oversubscribed on few cores must yield while they
    # wait, or they starve each other's heartbeats.
    mpijob() {
      sbatch --parsable -n "$RANKS" -o "$W/job-%j.out" --export=ALL,OMPI_MCA_mpi_yield_when_idle=1 --wrap \
        "cutpoint run --mpi --store $W/$1 --heartbeat-interval 200ms --every-steps 200 -- srun --mpi=pmix --kill-on-bad-exit=1 -n $RANKS $W/bin/heat2d_mpi $MSIZE $MSTEPS 0.2 100"
    }
    # mpi_done JOBID: COMPLETED with the Go heat2d's digest.
    mpi_done() {
      local got
      [ "$(field "$1" JobState)" = COMPLETED ] || fail "$1" "job state $(field "$1" JobState), want COMPLETED"
      got=$(sed -n 's/^result \([0-9a-f]*\)$/\1/p' "$W/job-$1.out" | tail -n 1)
      [ "$got" = "$MREF" ] || fail "$1" "digest '$got', want $MREF (the Go heat2d, cutpoint run)"
    }
    j=$(mpijob mpi-plain)
    wait_end "$j" 240
    mpi_done "$j"
    grep -q 'cut committed.*component=coordinator' "$W/job-$j.out" || fail "$j" "the undisturbed MPI job committed no cut"
    log "case mpi: undisturbed job $j passed"
    j=$(mpijob mpi-kill)
    wait_for "$j" 'cut committed.*component=coordinator' 180
    pid=""
    for _ in $(seq 50); do
      for p in $(pgrep -f "$W/bin/heat2d_mpi" || true); do
        e=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null || true)
        if grep -qx "SLURM_JOB_ID=$j" <<<"$e" && grep -qx "SLURM_PROCID=1" <<<"$e"; then pid=$p; break; fi
      done
      [ -n "$pid" ] && break
      sleep 0.1
    done
    [ -n "$pid" ] || fail "$j" "no MPI task of rank 1 found"
    kill -9 "$pid"
    log "case mpi: SIGKILL sent to MPI task 1 (pid $pid) of job $j"
    wait_end "$j" 240
    mpi_done "$j"
    for p in 'recovery-started g=2 e=[1-9][0-9]* step=[1-9]' 'recovery-finished g=2' 'task 1: Killed'; do
      grep -qE "$p" "$W/job-$j.out" || fail "$j" "no /$p/ in the output"
    done
    # Distinct ranks: under load a relaunch can fail and come again,
    # restoring another cut, which is no second world.
    n=$(grep -oE 'restored rank=[0-9]+ cut=[1-9]' "$W/job-$j.out" | sed 's/ cut=.*//' | sort -u | wc -l)
    [ "$n" = "$RANKS" ] || fail "$j" "$n ranks restored a cut, want the whole world of $RANKS"
    grep -E 'recovery-started g=2|recovery-finished g=2|task 1: Killed|^result ' "$W/job-$j.out" | sed 's/^/    /'
    log "case mpi: passed (job $j: task 1 killed, the world of $RANKS relaunched from a cut, digest $MREF)"
  fi
fi

if has nodeloss; then
  log "case nodeloss: restarting the cluster with two nodes"
  bash "$ROOT/slurm/ci/stop-slurm.sh" --purge >/dev/null
  SLURM_CI_NODES=2 bash "$ROOT/slurm/ci/start-slurm.sh"
  # The new cluster numbers its jobs from 1 again: the one-node jobs'
  # outputs move aside, or this job's output would append to theirs.
  mkdir -p "$W/one-node"
  mv "$W"/job-*.out "$W/one-node/" 2>/dev/null || true
  mkdir -p "$W/nodeloss"
  j=$(submit "$W/nodeloss" -N 2 -n "$RANKS" -- "${JOBFLAGS[@]}")
  wait_for "$j" 'cut committed.*component=coordinator' 120
  batch=$(field "$j" BatchHost)
  lost=""
  for n in $(scontrol show hostnames "$(field "$j" NodeList)"); do [ "$n" != "$batch" ] && lost=$n; done
  [ -n "$lost" ] || fail "$j" "no node besides the batch host $batch"
  tasks=""
  for p in $(pgrep -f 'cutpoint rank' || true); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURMD_NODENAME=$lost" &&
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_JOB_ID=$j"; then tasks+=" $p"; fi
  done
  [ -n "$tasks" ] || fail "$j" "no rank runs on $lost"
  stepds=$(for p in $tasks; do ps -o ppid= -p "$p"; done | sort -u | tr '\n' ' ')
  # shellcheck disable=SC2086
  kill -9 "$(cat "${SLURM_CI_DIR:-/var/tmp/cutpoint-slurm}/run/slurmd-$lost.pid")" $stepds $tasks
  log "case nodeloss: node $lost killed (slurmd, step daemons $stepds, ranks$tasks) under job $j"
  wait_end "$j" 240
  check_done "$j" 0
  for p in "rank's node unreachable: excluded from new steps.*node=$lost" 'recovery-finished'; do
    grep -qE "$p" "$W/job-$j.out" || fail "$j" "no /$p/ in the output"
  done
  log "case nodeloss: passed (job $j)"
fi

if has timelimit; then
  log "case timelimit: --time=2 --signal=B:USR1@60 (3 to 5 minutes)"
  mkdir -p "$W/timelimit"
  # Long enough that the first run cannot finish before its warning (it
  # comes 30 to 60 s after the start).
  TL=(--steps $((STEPS * 8)) --size "$SIZE" --interval 5s)
  REF=$(cutpoint run --ranks "$RANKS" --store "$W/ref-timelimit" "${TL[@]}" 2>"$W/ref.err" | sed -n 's/^result //p')
  j=$(submit "$W/timelimit" -n "$RANKS" --time=2 --signal=B:USR1@60 -- "${TL[@]}")
  wait_end "$j" 900
  check_done "$j" 1+
  log "case timelimit: passed (job $j, Restarts=$(field "$j" Restarts))"
fi

if has site; then
  log "case site: a site's Slurm and munge are left alone"
  bash "$ROOT/slurm/site-check.sh" || fail "" "slurm/site-check.sh failed"
  log "case site: passed"
fi
