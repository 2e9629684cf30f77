#!/usr/bin/env bash
# slurm-test.sh (make multinode-slurm-test): slurm/cutpoint.sbatch -N 3 on
# the real Slurm cluster of slurm.sh (one slurmd per bed host, slurmctld in
# cpbed-ctl). The script starts one `cutpoint nats` server per node; the
# coordinator runs on the batch host and the ranks as job steps on all
# three. Cases (SLURM_BED_CASES, default all five):
#
#   plain     sbatch -N 3 --ntasks-per-node=2 (6 ranks) ends COMPLETED with the digest of `cutpoint
#             run` of the same job; three servers, each advertising its
#             node's bed address; while it runs, every rank is connected
#             to its own node's server; no token in the output or on any
#             command line
#   nodekill  the same job; after the first cut a node that is not the
#             batch host dies whole (slurmd, step daemons, ranks and NATS
#             server, SIGKILL): the node is excluded, its ranks come back
#             on the other two inside the same allocation (Restarts=0) in
#             one recovery (none is waited for as a survivor), the
#             job ends COMPLETED with the same digest, and no rank runs
#             twice at any check
#   levels    the same job with --local node/{host}/levels (each node's
#             own directory, {host} its Slurm node name) --redundancy
#             partner --flush-every 1000; after a committed cut a node
#             other than the batch host dies whole and its node-local
#             directory is wiped: the job ends COMPLETED with the same
#             digest, the dead node's ranks restored from the copies on
#             another node, and the ranks' stats (CUTPOINT_STATS_DIR) show
#             no byte restored from the shared store
#   batchkill sbatch -N 2 --ntasks-per-node=3 with the levels case's
#             flags (no flush before the end); after a committed cut the
#             batch host dies whole (coordinator, its ranks, slurmd, NATS
#             server) and its node-local directory is wiped: Slurm takes
#             it out of the --no-kill job and marks it DOWN,
#             cutpoint.sbatch's watcher on the other node requeues the
#             job, whose second run (Restarts=1) starts on the two live
#             nodes once no rank of the first run is left, restores the
#             latest cut committed before the kill (every rank, from the
#             node-local levels: no byte from the shared store), and
#             ends COMPLETED with the same digest; the node is brought
#             back (slurm.sh revive) for the cases after it
#   mpi       an MPI job across two nodes (examples/mpi/heat2d_mpi.c, Open
#             MPI on libcutpoint): `cutpoint run --mpi --nats-listen
#             0.0.0.0:0 -- srun --mpi=pmix -N 2 -n 4 ...` in sbatch -N 2;
#             after a committed cut the MPI task of rank 3, on the node
#             that is not the batch host, is SIGKILLed: the world of 4 is
#             relaunched across both nodes from a cut (every rank
#             restores) and ends with the Go heat2d's digest; skipped
#             without mpicc or Slurm's pmix plugin
#
# SLURM_BED_STEPS (default 8000) and SLURM_BED_SIZE (96) size the job.
# CPBED_KEEP=1 leaves the bed, the cluster and the logs in place;
# SLURM_BED_LOGS=DIR copies the jobs' output and slurmctld's log there. Needs
# root, iproute2 and the Slurm packages; skips (exit 0) without root or
# network namespaces.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bed=$root/scripts/multinode/bed.sh
sl=$root/scripts/multinode/slurm.sh
bin=$root/bin/cutpoint
steps=${SLURM_BED_STEPS:-8000}
size=${SLURM_BED_SIZE:-96}
cases=${SLURM_BED_CASES:-plain nodekill levels batchkill mpi}
export CPBED_DIR=${CPBED_DIR:-/tmp/cpbed}
D=$CPBED_DIR
W=$D/shared/slurm-test
nranks=6
nodes=3
t0=$SECONDS

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "multinode-slurm-test: SKIP (needs root and iproute2 for network namespaces)"
  exit 0
fi
if ! ip netns add cpbed-probe 2>/dev/null; then
  echo "multinode-slurm-test: SKIP (cannot create network namespaces here)"
  exit 0
fi
ip netns del cpbed-probe

say() { printf '== [+%ss] %s\n' "$((SECONDS - t0))" "$*"; }
fail() {
  echo "multinode-slurm-test: FAIL: $*" >&2
  if [ -n "${job:-}" ]; then
    echo "--- scontrol show job $job" >&2
    "$sl" run scontrol show job "$job" >&2 || true
    echo "--- steps of job $job" >&2
    "$sl" run squeue -s -j "$job" >&2 || true
    echo "--- output of job $job (last 40 lines)" >&2
    tail -n 40 "$W/job-$job.out" >&2 || true
  fi
  echo "--- nodes" >&2
  "$sl" run sinfo -N >&2 || true
  for l in "$D"/slurm/cpbed-h*/slurmd.log; do
    [ -f "$l" ] || continue
    echo "--- $l (last 8 lines)" >&2
    tail -n 8 "$l" >&2
  done
  echo "--- slurmctld log (last 15 lines)" >&2
  tail -n 15 "$D/slurm/ctl/slurmctld.log" >&2 2>/dev/null || true
  exit 1
}
cleanup() {
  if [ -n "${SLURM_BED_LOGS:-}" ]; then
    mkdir -p "$SLURM_BED_LOGS"
    cp "$W"/job-*.out "$D/slurm/ctl/slurmctld.log" "$SLURM_BED_LOGS"/ 2>/dev/null || true
  fi
  if [ "${CPBED_KEEP:-}" = 1 ]; then
    echo "bed and cluster kept: $D ($sl down; $bed down remove them)"
  else
    "$sl" down >/dev/null 2>&1 || true
    "$bed" down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

[ -x "$bin" ] || fail "$bin missing (make build)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurmctld slurmd slurm-client munge"
  # As slurm/ci/start-slurm.sh: the packages' postinst must not start
  # the site daemons.
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  apt-cache show slurmctld >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

"$bed" down >/dev/null 2>&1 || true
"$sl" up
mkdir -p "$W"

sq() { "$sl" run "$@"; }
field() { sq scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# wait_end JOB SECONDS: until the job reached a final state.
wait_end() {
  local st
  for _ in $(seq "$2"); do
    st=$(field "$1" JobState)
    case "$st" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) return 0 ;;
    esac
    sleep 1
  done
  fail "job $1 not finished after $2 s (state $(field "$1" JobState))"
}

# wait_for JOB PATTERN SECONDS: until the job's output matches.
wait_for() {
  for _ in $(seq $(($3 * 5))); do
    grep -qE "$2" "$W/job-$1.out" 2>/dev/null && return 0
    case "$(field "$1" JobState)" in COMPLETED | FAILED | CANCELLED) fail "job $1 ended before its output showed /$2/" ;; esac
    sleep 0.2
  done
  fail "no /$2/ in the output of job $1 after $3 s"
}

# ranks_of H: "PID RANK RUN" of each cutpoint rank process in bed host hH
# (the rank: CUTPOINT_RANK for a rank brought back alone, else
# SLURM_PROCID; the run of the batch job it belongs to: 1 + its
# SLURM_RESTART_COUNT, which Slurm leaves unset in a job's first run).
ranks_of() {
  local p e r n
  for p in $(ip netns pids "cpbed-$1" 2>/dev/null); do
    tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q "^$bin rank " || continue
    e=$(tr '\0' '\n' 2>/dev/null <"/proc/$p/environ") || continue
    r=$(sed -n 's/^CUTPOINT_RANK=//p' <<<"$e" || true)
    [ -n "$r" ] || r=$(sed -n 's/^SLURM_PROCID=//p' <<<"$e")
    n=$(sed -n 's/^SLURM_RESTART_COUNT=//p' <<<"$e")
    echo "$p $r $((${n:-0} + 1))"
  done
}

# no_duplicates WHEN: no rank index runs in two processes on the bed.
no_duplicates() {
  local dup
  dup=$(for h in h1 h2 h3; do ranks_of "$h"; done | awk '{print $2}' | sort | uniq -d)
  [ -z "$dup" ] || fail "$1: rank(s) $dup run twice: $(for h in h1 h2 h3; do ranks_of "$h" | sed "s/^/$h: /"; done | tr '\n' ';')"
}

# no_secrets: no process on the bed carries a 32-hex-digit token on its
# command line, and the job's output shows none in a URL.
no_secrets() {
  local ns p
  for ns in cpbed-ctl cpbed-h1 cpbed-h2 cpbed-h3; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qE '(^|[^0-9a-f])[0-9a-f]{32}([^0-9a-f]|$)'; then
        fail "a token on the command line of pid $p in $ns: $(tr '\0' ' ' <"/proc/$p/cmdline" | sed -E 's/[0-9a-f]{32}/<TOKEN>/g')"
      fi
    done
  done
  if grep -qE '[0-9a-f]{32}@' "$W/job-$1.out"; then fail "job $1's output shows a token"; fi
}

# own_server H: every rank process in host hH that holds a connection
# holds it to hH's server; at least one does (a rank that is ending may
# already have closed its own).
own_server() {
  local h=$1 addr pid r peers seen=0
  addr=$("$bed" addr "${h#h}")
  while read -r pid r; do
    [ -n "$pid" ] || continue
    peers=$(ip netns exec "cpbed-$h" ss -tnpH state established 2>/dev/null | grep "pid=$pid," | awk '{print $4}' | sed 's/:[0-9]*$//' | sort -u | tr '\n' ' ' || true)
    [ -n "$peers" ] || continue
    [ "$peers" = "$addr " ] || fail "rank $r (pid $pid) in $h is connected to '${peers}', want only its own node's server at $addr"
    seen=$((seen + 1))
  done < <(ranks_of "$h")
  [ "$seen" -gt 0 ] || fail "no rank in $h holds a NATS connection"
  echo "$h: $seen ranks on their own node's server ($addr)"
}

say "reference: cutpoint run --ranks $nranks --size $size --steps $steps (embedded NATS, in h1)"
ref=$("$bed" exec h1 env CUTPOINT_CONFIG=/dev/null "$bin" run --store "$D/node/h1/ref-store" --interval 0 --ranks "$nranks" \
  --size "$size" --steps "$steps" --log-level warn | tail -1 | awk '$1 == "result" {print $2}')
[ -n "$ref" ] || fail "no reference digest"
say "undisturbed digest $ref"

# submit NAME [NODES [FLAGS...]]: sbatch -N NODES (default 3) of the job,
# its 6 ranks spread evenly (two on each of three nodes), from the login
# namespace; FLAGS go to the coordinator.
submit() {
  local name=$1 n=${2:-$nodes}
  shift $(($# < 2 ? $# : 2))
  mkdir -p "$W/$name"
  sq env CUTPOINT_STORE="$W/$name" CUTPOINT_BIN="$bin" CUTPOINT_CONFIG=/dev/null ${CUTPOINT_STATS_DIR:+CUTPOINT_STATS_DIR="$CUTPOINT_STATS_DIR"} \
    sbatch --parsable -N "$n" --ntasks-per-node=$((nranks / n)) --chdir "$W" -o "$W/job-%j.out" "$root/slurm/cutpoint.sbatch" \
    --size "$size" --steps "$steps" --interval 0 --every-steps 500 "$@"
}

# node_restores CASE DIR: the rank stats files in DIR (CUTPOINT_STATS_DIR)
# show bytes restored from the node-local levels and none from the shared
# store; prints the bytes by level.
node_restores() {
  python3 - "$1" "$2" <<'PY'
import glob, json, sys
tot = {}
for f in glob.glob(sys.argv[2] + "/rank-*.json"):
    for level, n in (json.load(open(f)).get("restore_bytes") or {}).items():
        tot[level] = tot.get(level, 0) + n
print(sys.argv[1] + ": bytes restored by level:", tot)
sys.exit(0 if tot.get("shared", 0) == 0 and tot.get("local", 0) + tot.get("partner", 0) > 0 else 1)
PY
}

# check_done JOB [RESTARTS]: COMPLETED after RESTARTS requeues (default
# 0: in its first run) with the reference digest.
check_done() {
  local got
  [ "$(field "$1" JobState)" = COMPLETED ] || fail "job $1: state $(field "$1" JobState), want COMPLETED"
  [ "$(field "$1" Restarts)" = "${2:-0}" ] || fail "job $1: Restarts=$(field "$1" Restarts), want ${2:-0}"
  got=$(sed -n 's/^result \([0-9a-f]*\)$/\1/p' "$W/job-$1.out" | tail -n 1)
  [ "$got" = "$ref" ] || fail "job $1: digest '$got', want $ref (cutpoint run)"
}

# check_servers JOB: one server per node, on the node's bed address, TLS
# for its clients (mutual) and its routes (the job's own CA).
check_servers() {
  local i a
  grep -q "NATS: $nodes servers in one cluster, one per node" "$W/job-$1.out" || fail "job $1 did not start $nodes NATS servers"
  for i in $(seq 1 "$nodes"); do
    a=$("$bed" addr "$i")
    grep -qE "msg=\"nats-server ready\" url=tls://([^@ ]*@)?$a:[0-9]+ tls=true mtls=true cluster=nats-route://$a:[0-9]+" "$W/job-$1.out" ||
      fail "job $1: no TLS server of h$i ready on $a (client and route URL)"
  done
}

for c in $cases; do
  case "$c" in
  plain)
    say "plain: sbatch -N $nodes --ntasks-per-node=$((nranks / nodes)) slurm/cutpoint.sbatch"
    job=$(submit plain)
    wait_for "$job" 'cut committed.*component=coordinator' 120
    # Mid-run: every rank on its own node's server, no duplicates, no token in argv.
    for h in h1 h2 h3; do
      [ -n "$(ranks_of "$h")" ] || fail "plain: no rank runs in $h"
      own_server "$h"
    done
    no_duplicates plain
    no_secrets "$job"
    wait_end "$job" 240
    check_done "$job"
    check_servers "$job"
    no_secrets "$job"
    say "plain: passed (job $job: COMPLETED, digest $ref, 3 servers, each rank on its own node's server)"
    ;;
  nodekill)
    say "nodekill: sbatch -N $nodes --ntasks-per-node=$((nranks / nodes)), a node other than the batch host killed whole after the first cut"
    job=$(submit nodekill)
    wait_for "$job" 'cut committed.*component=coordinator' 120
    batch=$(field "$job" BatchHost)
    victim=""
    for h in cpbed-h3 cpbed-h2; do [ "$h" != "$batch" ] && [ -z "$victim" ] && victim=$h; done
    lost=$(ranks_of "${victim#cpbed-}" | awk '{print $2}' | sort -n | xargs)
    [ "$(wc -w <<<"$lost")" = $((nranks / nodes)) ] || fail "nodekill: ranks '$lost' run on $victim, want $((nranks / nodes))"
    tk=$SECONDS
    "$sl" kill "$victim"
    say "nodekill: $victim SIGKILLed whole (its ranks $lost, slurmd, step daemons, NATS server); batch host $batch"
    wait_for "$job" 'recovery-finished' 120
    say "nodekill: recovered $((SECONDS - tk)) s after the kill"
    no_duplicates "nodekill after the recovery"
    # Every rank runs again, on the two live nodes.
    live=$(for h in h1 h2 h3; do ranks_of "$h"; done | awk '{print $2}' | sort -n | xargs)
    [ "$live" = "$(seq 0 $((nranks - 1)) | xargs)" ] || fail "nodekill: after the recovery ranks '$live' run, want 0-$((nranks - 1))"
    [ -z "$(ranks_of "${victim#cpbed-}")" ] || fail "nodekill: a rank runs on the dead node $victim"
    wait_end "$job" 300
    check_done "$job"
    check_servers "$job"
    grep -qE "excluded from new steps.*node=$victim|node $victim (down|failed|unreachable)" "$W/job-$job.out" ||
      fail "nodekill: the spawner did not exclude $victim"
    # The node took all its ranks with it at once: none was waited for as
    # a survivor of the recovery (that ends only at its ready timeout).
    if grep -q 'ranks not ready within' "$W/job-$job.out"; then
      fail "nodekill: a rank of $victim was waited for as a survivor: $(grep 'not ready within' "$W/job-$job.out" | head -1)"
    fi
    # The coordinator saw each of the dead node's ranks end.
    for r in $lost; do
      grep -qE "msg=\"rank process ended\" component=coordinator rank=$r " "$W/job-$job.out" ||
        fail "nodekill: the coordinator did not see rank $r of $victim end"
    done
    for h in h1 h2 h3; do
      [ -z "$(ranks_of "$h")" ] || fail "nodekill: ranks still run in $h after the job ended: $(ranks_of "$h" | tr '\n' ' ')"
    done
    no_secrets "$job"
    "$sl" revive "$victim"
    say "nodekill: passed (job $job: COMPLETED in the same allocation, digest $ref, ranks $lost of $victim respawned, no duplicate)"
    ;;
  levels)
    # Node-local directories: node/hN/ is host hN's disk; Slurm names the
    # node cpbed-hN, which is what {host} becomes (SLURMD_NODENAME).
    for i in 1 2 3; do ln -sfn "h$i" "$D/node/cpbed-h$i"; rm -rf "$D/node/h$i/levels"; done
    st=$W/levels-stats
    rm -rf "$st"
    mkdir -p "$st"
    say "levels: sbatch -N $nodes --ntasks-per-node=$((nranks / nodes)) --local node/{host}/levels --redundancy partner --flush-every 1000, a node killed whole after a committed cut, its node-local directory wiped"
    job=$(CUTPOINT_STATS_DIR=$st submit levels "$nodes" --local "$D/node/{host}/levels" --redundancy partner --flush-every 1000)
    wait_for "$job" 'cut committed.*component=coordinator' 120
    batch=$(field "$job" BatchHost)
    victim=""
    for h in cpbed-h3 cpbed-h2; do [ "$h" != "$batch" ] && [ -z "$victim" ] && victim=$h; done
    lost=$(ranks_of "${victim#cpbed-}" | awk '{print $2}' | sort -n | xargs)
    [ "$(wc -w <<<"$lost")" = $((nranks / nodes)) ] || fail "levels: ranks '$lost' run on $victim, want $((nranks / nodes))"
    # Each node's ranks keep their cuts in that node's own directory.
    for i in 1 2 3; do
      [ -n "$(find "$D/node/h$i/levels" -type f 2>/dev/null | head -n 1)" ] || fail "levels: nothing in h$i's node-local directory"
    done
    grep -qE 'msg="node-local level" .*dir=[^ ]*/node/cpbed-h[123]/levels .*redundancy=partner' "$W/job-$job.out" ||
      fail "levels: no rank opened its node's directory under its Slurm node name"
    "$sl" kill "$victim"
    rm -rf "$D/node/${victim#cpbed-}/levels"
    say "levels: $victim SIGKILLed whole (its ranks $lost), its node-local directory wiped; batch host $batch"
    wait_for "$job" 'recovery-finished' 120
    no_duplicates "levels after the recovery"
    wait_end "$job" 300
    check_done "$job"
    for h in h1 h2 h3; do
      [ -z "$(ranks_of "$h")" ] || fail "levels: ranks still run in $h after the job ended: $(ranks_of "$h" | tr '\n' ' ')"
    done
    # The restores read the node-local copies (the survivors their own,
    # the respawned ranks the copies on their partner's node), no byte of
    # the shared store.
    node_restores levels "$st" || fail "levels: the ranks' restores read the shared store (stats in $st)"
    # The dead node's ranks were rebuilt from the copies on another node
    # (their partner's: its own directory when the rank came back there).
    for r in $lost; do
      grep -qE "msg=restored rank=$r .*tier=(local|partner) " "$W/job-$job.out" ||
        fail "levels: rank $r of $victim was not restored from a node-local copy: $(grep -E "msg=restored rank=$r " "$W/job-$job.out" | tail -n 1)"
    done
    no_secrets "$job"
    "$sl" revive "$victim"
    say "levels: passed (job $job: COMPLETED, digest $ref, ranks $lost of $victim rebuilt from their partner copies, 0 bytes from the shared store)"
    ;;
  batchkill)
    # -N 2 on the three hosts: the requeued job finds two live nodes while
    # the dead batch host stays DOWN.
    # With the node-local levels and no flush before the end: the cut
    # the second run restores exists only on the nodes (the dead batch
    # host's ranks' copies on their partner's node), which is what a
    # requeue must find.
    for i in 1 2 3; do ln -sfn "h$i" "$D/node/cpbed-h$i"; rm -rf "$D/node/h$i/levels"; done
    st=$W/batchkill-stats
    rm -rf "$st"
    mkdir -p "$st"
    say "batchkill: sbatch -N 2 --ntasks-per-node=$((nranks / 2)) --local node/{host}/levels --redundancy partner --flush-every 1000, the batch host killed whole after a committed cut, its node-local directory wiped"
    job=$(CUTPOINT_STATS_DIR=$st submit batchkill 2 --local "$D/node/{host}/levels" --redundancy partner --flush-every 1000)
    wait_for "$job" 'cut committed.*component=coordinator' 120
    batch=$(field "$job" BatchHost)
    alloc=$(sq scontrol show hostnames "$(field "$job" NodeList)" | xargs)
    [ "$(wc -w <<<"$alloc")" = 2 ] || fail "batchkill: allocation '$alloc', want 2 nodes"
    other=""
    for h in $alloc; do [ "$h" != "$batch" ] && other=$h; done
    [ -n "$(ranks_of "${other#cpbed-}")" ] || fail "batchkill: no rank runs on $other"
    # The latest cut the first run committed before the kill: the
    # requeued run must restore it (or a later one, should one commit
    # in the instant before the kill).
    tk=$SECONDS
    # As a node that dies: its network goes silent first (no reset
    # reaches the other hosts), then every process in it is killed. Killed
    # one by one with the network up, the dead host's srun of the watcher
    # step refused the watcher's step daemon on the live node, which then
    # cancelled the watcher (seen once in CI): no real node failure does.
    "$bed" cut "${batch#cpbed-}"
    "$sl" kill "$batch"
    rm -rf "$D/node/${batch#cpbed-}/levels"
    last=$(grep -E 'msg="cut committed" component=coordinator' "$W/job-$job.out" | sed -n 's/.* epoch=\([0-9]*\) .*/\1/p' | tail -n 1)
    [ -n "$last" ] || fail "batchkill: no committed cut before the kill"
    say "batchkill: batch host $batch SIGKILLed whole (coordinator, its ranks, slurmd, NATS server) after cut $last; $other lives"
    # Slurm notices the dead node (SlurmdTimeout), marks it DOWN and
    # requeues the job: its steps on $other are killed.
    for _ in $(seq 120); do
      [ "$(field "$job" Restarts)" = 1 ] && break
      sleep 1
    done
    [ "$(field "$job" Restarts)" = 1 ] || fail "batchkill: not requeued $((SECONDS - tk)) s after the kill (state $(field "$job" JobState), Restarts=$(field "$job" Restarts))"
    say "batchkill: requeued $((SECONDS - tk)) s after the kill (state $(field "$job" JobState)); $batch is $(sq sinfo -h -N -n "$batch" -o %T)"
    # By cutpoint.sbatch's watcher on the live node (Slurm itself keeps a
    # --no-kill job RUNNING without its batch host).
    grep -q "cutpoint.sbatch: watching job $job for the loss of its batch host from $other" "$W/job-$job.out" ||
      fail "batchkill: no watcher started on $other"
    grep -q "cutpoint.sbatch: the batch host $batch left job $job (node failure): requeueing it from $other" "$W/job-$job.out" ||
      fail "batchkill: the job was not requeued by the watcher on $other"
    # The node is marked DOWN (not responding, "*") once the job's
    # requeue has cleaned up (SlurmdTimeout after its last answer: up to a
    # minute here under load): the requeued run cannot go there.
    for _ in $(seq 120); do
      case "$(sq sinfo -h -N -n "$batch" -o %T)" in down*) break ;; esac
      sleep 0.5
    done
    case "$(sq sinfo -h -N -n "$batch" -o %T)" in down*) ;; *) fail "batchkill: the dead batch host $batch is not DOWN ($(sq sinfo -h -N -n "$batch" -o %T))" ;; esac
    wait_for "$job" "job $job run 2 on " 120
    say "batchkill: run 2 started $((SECONDS - tk)) s after the kill on $(field "$job" NodeList)"
    # From now on no rank of run 1 may live anywhere: Slurm killed the
    # old steps before it started the job again.
    old=$(for h in h1 h2 h3; do ranks_of "$h" | awk -v h="$h" '$3 == 1 {print h": pid "$1" rank "$2}'; done)
    [ -z "$old" ] || fail "batchkill: ranks of run 1 still live while run 2 runs: $(tr '\n' ';' <<<"$old")"
    wait_for "$job" 'coordinator started.*mode=restore' 120
    wait_for "$job" 'msg=restored .*cut='"$last"' ' 120
    wait_for "$job" 'cut committed.*component=coordinator.*' 120
    no_duplicates "batchkill in run 2"
    [ -z "$(ranks_of "${batch#cpbed-}")" ] || fail "batchkill: a rank runs on the dead node $batch"
    wait_end "$job" 300
    check_done "$job" 1
    grep -qE 'the store holds the job: restoring it' "$W/job-$job.out" || fail "batchkill: run 2 did not restore the job"
    # Every rank of run 2 restored cut $last (the ranks' "restored" lines).
    n=$(grep -cE "msg=restored .*cut=$last " "$W/job-$job.out" || true)
    [ "$n" -ge "$nranks" ] || fail "batchkill: $n ranks restored cut $last, want $nranks"
    case " $(sq scontrol show hostnames "$(field "$job" NodeList)" | xargs) " in *" $batch "*) fail "batchkill: run 2 ran on the dead node $batch" ;; esac
    # Run 2 restored from the node-local levels alone: cut $last was never
    # flushed to the shared store.
    node_restores batchkill "$st" || fail "batchkill: run 2's restores read the shared store (stats in $st)"
    for h in h1 h2 h3; do
      [ -z "$(ranks_of "$h")" ] || fail "batchkill: ranks still run in $h after the job ended: $(ranks_of "$h" | tr '\n' ' ')"
    done
    no_secrets "$job"
    "$sl" revive "$batch"
    say "batchkill: passed (job $job: requeued once, run 2 on $(field "$job" NodeList) restored cut $last from the node-local levels, digest $ref; $batch back in service)"
    ;;
  mpi)
    if ! command -v mpicc >/dev/null; then
      say "mpi: skipped (no mpicc; scripts/deps.sh installs Open MPI)"
      continue
    fi
    if ! sq srun --mpi=list 2>&1 | grep -qw pmix; then
      say "mpi: skipped (this Slurm has no pmix plugin)"
      continue
    fi
    mkdir -p "$W/bin"
    (cd "$root" && go build -buildmode=c-shared -o "$W/bin/libcutpoint.so" ./cmd/libcutpoint)
    rm -f "$W/bin/libcutpoint.h"
    mpicc -std=c99 -O2 -ffp-contract=off -Wall -Werror -I"$root/cmd/libcutpoint/include" -I"$root/examples/c" \
      -o "$W/bin/heat2d_mpi" "$root/examples/mpi/heat2d_mpi.c" "$root/examples/c/sha256.c" \
      -L"$W/bin" -lcutpoint -Wl,-rpath,"$W/bin" -lm
    # 64x64 for 20000 steps paced at 100 us a step, cuts every 200 steps
    # (as slurm/test.sh's one-node case): several commit before the kill.
    msize=64 msteps=20000 mranks=4
    mref=$("$bed" exec h1 env CUTPOINT_CONFIG=/dev/null "$bin" run --store "$D/node/h1/ref-mpi" --interval 0 --ranks "$mranks" \
      --size "$msize" --steps "$msteps" --log-level warn | tail -1 | awk '$1 == "result" {print $2}')
    [ -n "$mref" ] || fail "mpi: no reference digest"
    rm -rf "$W/mpi"
    say "mpi: sbatch -N 2: cutpoint run --mpi --nats-listen 0.0.0.0:0 -- srun --mpi=pmix -N 2 -n $mranks heat2d_mpi; rank 3's task SIGKILLed after a cut"
    # The embedded server listens on the batch host's bed address (TLS
    # with the job's own certificate, whose CA reaches the ranks in their
    # environment); Open MPI speaks TCP between the nodes (ob1, no
    # fabric here) and yields while it waits, as on few cores it must.
    job=$(sq env CUTPOINT_CONFIG=/dev/null OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp \
      sbatch --parsable -N 2 --ntasks-per-node=2 --chdir "$W" -o "$W/job-%j.out" --export=ALL --wrap \
      "$bin run --mpi --nats-listen 0.0.0.0:0 --store $W/mpi --interval 0 --heartbeat-interval 200ms --every-steps 200 -- srun --mpi=pmix --kill-on-bad-exit=1 -N 2 -n $mranks $W/bin/heat2d_mpi $msize $msteps 0.2 100")
    wait_for "$job" 'cut committed.*component=coordinator' 120
    batch=$(field "$job" BatchHost)
    alloc=$(sq scontrol show hostnames "$(field "$job" NodeList)" | xargs)
    [ "$(wc -w <<<"$alloc")" = 2 ] || fail "mpi: allocation '$alloc', want 2 nodes"
    other=""
    for h in $alloc; do [ "$h" != "$batch" ] && other=$h; done
    # Rank 3's task (block distribution: ranks 2 and 3 on the second node).
    pid=""
    for _ in $(seq 50); do
      for p in $(ip netns pids "$other" 2>/dev/null); do
        tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q "^$W/bin/heat2d_mpi " || continue
        e=$(tr '\0' '\n' 2>/dev/null <"/proc/$p/environ") || continue
        if grep -qx "SLURM_JOB_ID=$job" <<<"$e" && grep -qx "SLURM_PROCID=3" <<<"$e"; then pid=$p; break; fi
      done
      [ -n "$pid" ] && break
      sleep 0.1
    done
    [ -n "$pid" ] || fail "mpi: no MPI task of rank 3 found on $other"
    kill -9 "$pid"
    say "mpi: SIGKILL sent to the MPI task of rank 3 (pid $pid) on $other; batch host $batch"
    wait_end "$job" 240
    [ "$(field "$job" JobState)" = COMPLETED ] || fail "mpi: job $job: state $(field "$job" JobState), want COMPLETED"
    got=$(sed -n 's/^result \([0-9a-f]*\)$/\1/p' "$W/job-$job.out" | tail -n 1)
    [ "$got" = "$mref" ] || fail "mpi: job $job: digest '$got', want $mref (the Go heat2d, cutpoint run)"
    for p in 'recovery-started g=2 e=[1-9][0-9]* step=[1-9]' 'recovery-finished g=2' 'the MPI world'; do
      grep -qE "$p" "$W/job-$job.out" || fail "mpi: no /$p/ in the output of job $job"
    done
    # The relaunched world ran on both nodes again, and every rank of it
    # restored a cut (distinct ranks: a relaunch that fails under load
    # and comes again is no second world).
    n=$(grep -oE 'restored rank=[0-9]+ cut=[1-9]' "$W/job-$job.out" | sed 's/ cut=.*//' | sort -u | wc -l)
    [ "$n" = "$mranks" ] || fail "mpi: $n ranks restored a cut, want the whole world of $mranks"
    no_secrets "$job"
    say "mpi: passed (job $job: rank 3 killed on $other, the world of $mranks relaunched on $alloc from a cut, digest $mref)"
    ;;
  *) fail "unknown case $c" ;;
  esac
  job=""
done
say "all cases passed ($cases) in $((SECONDS - t0)) s"
