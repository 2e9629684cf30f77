#!/usr/bin/env bash
# test.sh (make multinode-test): cutpoint on the multi-host bed of bed.sh,
# three network-namespace "hosts", each running one `cutpoint nats` server
# of a 3-server cluster (client port 4222, routes 6222, monitoring 8222 on
# the host's loopback). The coordinator runs in h1 with --spawn none; the
# ranks are `cutpoint rank` processes started in their hosts. Every process
# gets the list of all three client URLs in CUTPOINT_NATS and dials its own
# host's server first. Cases (MULTINODE_CASES, default all but measure-load):
#
#   cluster  the job on the cluster ends with the undisturbed digest
#   kill     h3's server SIGKILLed after the first cut, then h1's (the
#            coordinator's) two cuts later: the undisturbed digest, the
#            failovers in the logs, the token in none
#   measure  NATS bytes per step through each server (varz in/out deltas),
#            ranks packed on h1 vs spread over the hosts
#   hostloss `cutpoint run` in h1 places the ranks itself (--hosts
#            cpbed-h1:2,cpbed-h2:2,cpbed-h3:2, --spawn-cmd 'ip netns exec
#            {host} {cmd}'); after the first cut host h2 is killed whole
#            (every process in its namespace, its NATS server included,
#            SIGKILL): its ranks are respawned on h3's spare slots, the job
#            ends with the undisturbed digest and no rank is left running
#   partition the same job with h2 cut off the bridge for 10 s after the
#            first cut and then healed: its ranks are declared lost and
#            replaced, the old ones fenced; the undisturbed digest, no rank
#            left running
#   levels   `run --hosts h1:2,h2:2,h3:2` (spawn command `ip netns exec
#            cpbed-{host} {cmd}`, 3 x MULTINODE_STEPS steps, against its
#            own undisturbed digest) with the node-local level in each host's
#            bed directory (--local node/{host}/..., --redundancy partner,
#            --flush-every 3, --stats-dir); after the first cut host h2 is
#            killed whole (its ranks and NATS server, SIGKILL) and its
#            node-local directory wiped: h2's ranks come back on h3 from
#            their partner copies on h1, h1's roll back from their own, the
#            ranks' counters show 0 bytes read from the shared store (the
#            bytes per level are printed), one finished process per rank,
#            the undisturbed digest, no rank left running; h1's ranks move
#            their partner copies from h2 to h3 (partner_changes 1, logged
#            once each) and send no shard to the shared store for want of
#            a copy (fallback_bytes 0)
#   levels-rs the same with --redundancy rs:2+1 on five one-slot hosts (the
#            bed grows to h1..h5, a NATS server on each; h5 the spare): h2's
#            rank is rebuilt on h5 from the erasure fragments on h3 h4 h1;
#            the other ranks move their fragment for h2 to h5, h2's rank on
#            h5 its own to h4 (fragment_moves 1 each, logged) and send no
#            shard to the shared store for want of a fragment host
#            (fallback_bytes 0)
#   standby  `cutpoint coordinator --hosts ... --spawn-cmd ...` in h1 and a
#            standby (the same flags and --standby) in h2; after the first
#            cut host h1 is killed whole (the coordinator, its NATS server,
#            ranks 0 and 1: every process in its namespace, SIGKILL) and its
#            namespace removed (a start there fails, as ssh to a dead host
#            does); the standby takes the job over when the lease expires,
#            respawns ranks 0 and 1 on h3's spare slots, and the job ends
#            with the undisturbed digest, no rank left running
#   standby-moved the standby case after a move: --hosts h1:2,h2:2,h3:4,
#            the standby in h3; host h2 killed whole after the first cut
#            (its ranks move to h3, the coordinator records h2 down in
#            jobs/<job>/placement.json), then h1 killed whole: the standby
#            adopts the record, never tries h2, respawns ranks 0 and 1 on
#            h3; the undisturbed digest, no rank left running
#   load     busy loops on every core of the machine (nproc of them, for
#            the whole job) while `run --hosts` runs the job with the
#            DEFAULT heartbeat interval and failure timeout: no rank is
#            declared lost (rank-lost events in the coordinator's log: 0)
#            and the digest is the undisturbed one
#   measure-load the load case repeated for MULTINODE_LOAD_SECONDS (default
#            900): false losses per hour at 100 % CPU on every core, a raw
#            result line (needs MULTINODE_OUT)
#
# (One NATS server of the cluster killed: the kill case, which kills h3's
# server and later h1's, one at a time while the job runs.)
#
# MULTINODE_STEPS (default 6000) and MULTINODE_SIZE (96) size the job;
# MULTINODE_LOAD_STEPS (8000) and MULTINODE_LOAD_SIZE (256) the load job;
# MULTINODE_OUT=DIR appends each figure (hostloss recovery times, measure
# bytes per step) as a JSON line to DIR/results.jsonl, the raw results of
# docs/benchmarks.md. CPBED_KEEP=1 leaves the bed and its logs in place. Needs root and ip;
# skips (exit 0) without them.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bed=$root/scripts/multinode/bed.sh
bin=$root/bin/cutpoint
steps=${MULTINODE_STEPS:-6000}
size=${MULTINODE_SIZE:-96}
cases=${MULTINODE_CASES:-cluster kill hostloss partition standby standby-moved load levels levels-rs measure}
load_steps=${MULTINODE_LOAD_STEPS:-8000}
load_size=${MULTINODE_LOAD_SIZE:-256}
export CPBED_DIR=${CPBED_DIR:-/tmp/cpbed}
D=$CPBED_DIR
nranks=4

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "multinode-test: SKIP (needs root and iproute2 for network namespaces)"
  exit 0
fi
if ! ip netns add cpbed-probe 2>/dev/null; then
  echo "multinode-test: SKIP (cannot create network namespaces here)"
  exit 0
fi
ip netns del cpbed-probe

say() { printf '== %s\n' "$*"; }
fail() { echo "multinode-test: FAIL: $*" >&2; exit 1; }

declare -a pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "${CPBED_KEEP:-}" = 1 ]; then
    echo "bed kept: $D ($bed down removes it)"
  else
    "$bed" down >/dev/null
  fi
}
trap cleanup EXIT

[ -x "$bin" ] || fail "$bin missing (make build)"
"$bed" down >/dev/null 2>&1 || true
"$bed" up
mkdir -p "$D/shared/secrets"
chmod 700 "$D/shared/secrets"
tok() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
(umask 077; tok >"$D/shared/secrets/nats.token"; tok >"$D/shared/secrets/cluster.token")
token=$(cat "$D/shared/secrets/nats.token")

# run_in HOST CMD...: CMD in host HOST, with no config file from the cwd,
# in the foreground. Background processes are started as `"$bed" exec HOST
# env ... &` directly: bed.sh execs ip, which execs env, which execs the
# command, so $! is the command's own pid (a function run with & would be
# a subshell, and killing it would leave the command running).
run_in() { local h=$1; shift; "$bed" exec "$h" env CUTPOINT_CONFIG=/dev/null "$@"; }

declare -a natspid=()
urls=""
# nhosts: the bed's hosts with a NATS server (3; the levels-rs case adds
# two).
nhosts=3
start_nats() {
  urls=""
  for i in $(seq 1 "$nhosts"); do
    local routes=""
    for j in $(seq 1 "$nhosts"); do
      [ "$i" = "$j" ] || routes+="${routes:+,}nats-route://$("$bed" addr "$j"):6222"
    done
    rm -f "$D/node/h$i/nats.url"
    "$bed" exec "h$i" env CUTPOINT_CONFIG=/dev/null "$bin" nats --listen 0.0.0.0:4222 --cluster 0.0.0.0:6222 --routes "$routes" --insecure-plaintext \
      --token-file "$D/shared/secrets/nats.token" --cluster-token-file "$D/shared/secrets/cluster.token" \
      --monitor 127.0.0.1:8222 --url-file "$D/node/h$i/nats.url" </dev/null >/dev/null 2>>"$D/node/h$i/nats.log" &
    natspid[i]=$!
    pids+=($!)
  done
  for i in $(seq 1 "$nhosts"); do
    for _ in $(seq 1 200); do [ -s "$D/node/h$i/nats.url" ] && break; sleep 0.05; done
    [ -s "$D/node/h$i/nats.url" ] || fail "nats server of h$i did not come up: $(tail -5 "$D/node/h$i/nats.log")"
    local u
    u=$(cat "$D/node/h$i/nats.url")
    case "$u" in
      *0.0.0.0*) fail "h$i wrote an undialable URL (0.0.0.0)" ;;
      *"@$("$bed" addr "$i"):4222") ;;
      *) fail "h$i wrote URL host ${u#*@}, want $("$bed" addr "$i"):4222" ;;
    esac
    urls+="${urls:+,}$u"
  done
  # The mesh is complete when every server routes to all the others.
  for i in $(seq 1 "$nhosts"); do
    for _ in $(seq 1 200); do
      n=$(varz "h$i" routez | sed -n 's/.*"num_routes": *\([0-9]*\).*/\1/p')
      [ "${n:-0}" -ge $((nhosts - 1)) ] && break
      sleep 0.05
    done
    [ "${n:-0}" -ge $((nhosts - 1)) ] || fail "h$i has ${n:-0} routes, want $((nhosts - 1)) or more"
  done
}

stop_nats() {
  for i in $(seq 1 "$nhosts"); do kill "${natspid[i]}" 2>/dev/null || true; wait "${natspid[i]}" 2>/dev/null || true; done
}

# varz HOST [PAGE]: a monitoring page of HOST's server (from inside HOST).
varz() {
  "$bed" exec "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8222 && printf "GET /%s HTTP/1.0\r\n\r\n" "$1" >&3 && cat <&3' _ "${2:-varz}" 2>/dev/null || true
}

# route_in HOST: bytes HOST's server received over its routes so far.
route_in() { varz "$1" routez | sed -n 's/^ *"in_bytes": *\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}'; }

# field JSON NAME: a top-level integer field of a varz page.
field() { sed -n "s/^  \"$2\": *\([0-9]*\).*/\1/p" <<<"$1" | head -1; }

say "reference: the job undisturbed (embedded NATS in h1)"
ref=$(run_in h1 "$bin" run --store "$D/node/h1/ref-store" --interval 0 --ranks "$nranks" --size "$size" \
  --steps "$steps" --log-level warn | tail -1 | awk '$1 == "result" {print $2}')
[ -n "$ref" ] || fail "no reference digest"
echo "undisturbed digest $ref"

# run_job LABEL PLACEMENT KILLS: the job with rank r in host ${PLACEMENT[r]};
# KILLS=1 SIGKILLs h3's server after cut 1 and h1's two cuts later. Sets
# digest.
run_job() {
  local label=$1 placement=($2) kills=$3
  local store=$D/shared/store-$label out=$D/node/h1/coord-$label
  mkdir -p "$store"
  # --spawn none: the coordinator and the ranks started here hold one job
  # key, in their environment (a prefix assignment: not on any argv).
  local key
  key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  CUTPOINT_JOB_KEY=$key "$bed" exec h1 env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" "$bin" coordinator --store "$store" --ranks "$nranks" --spawn none \
    --interval 0 --every-steps 100 --heartbeat-interval 100ms --size "$size" --steps "$steps" \
    </dev/null >"$out.out" 2>"$out.log" &
  local coord=$!
  pids+=($coord)
  for _ in $(seq 1 400); do [ -s "$store/cutpoint-store.json" ] && break; sleep 0.05; done
  [ -s "$store/cutpoint-store.json" ] || fail "$label: the coordinator made no store: $(tail -5 "$out.log")"
  local r
  for r in $(seq 0 $((nranks - 1))); do
    local h=h${placement[r]}
    cd "$D/node/$h"
    CUTPOINT_JOB_KEY=$key "$bed" exec "$h" env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" CUTPOINT_JOB=heat2d \
      CUTPOINT_WORLD=$nranks CUTPOINT_STORE="$store" CUTPOINT_RANK="$r" CUTPOINT_HEARTBEAT_INTERVAL=100ms CUTPOINT_LOG_LEVEL=debug \
      "$bin" rank --size "$size" --steps "$steps" </dev/null >/dev/null 2>"$D/node/$h/rank$r-$label.log" &
    pids+=($!)
    cd "$root"
  done
  if [ "$kills" = 1 ]; then
    wait_epoch "$out.log" 1 || fail "$label: no first cut: $(tail -5 "$out.log")"
    { kill -9 "${natspid[3]}"; wait "${natspid[3]}"; } 2>/dev/null || true
    echo "SIGKILLed h3's nats-server (pid ${natspid[3]}) after cut $(last_epoch "$out.log")"
    wait_epoch "$out.log" $(($(last_epoch "$out.log") + 2)) || fail "$label: no cut after h3's server died: $(tail -5 "$out.log")"
    { kill -9 "${natspid[1]}"; wait "${natspid[1]}"; } 2>/dev/null || true
    echo "SIGKILLed h1's nats-server (the coordinator's, pid ${natspid[1]}) after cut $(last_epoch "$out.log")"
  fi
  local t0=$SECONDS
  while kill -0 "$coord" 2>/dev/null; do
    [ $((SECONDS - t0)) -lt 180 ] || fail "$label: the job did not end in 180 s: $(tail -5 "$out.log")"
    sleep 0.1
  done
  wait "$coord" || fail "$label: coordinator exit $?: $(tail -5 "$out.log")"
  if grep -rqF "$key" "$out.log" "$D"/node/*/rank*-"$label".log; then fail "$label: a log shows the job key"; fi
  digest=$(tail -1 "$out.out" | awk '$1 == "result" {print $2}')
}

# logtime LINE: the time= field of a log line as seconds since the epoch.
logtime() { date -d "$(sed -n 's/^time=\([^ ]*\).*/\1/p' <<<"$1")" +%s.%N; }

# result NAME JSON: with MULTINODE_OUT set, a raw result for
# docs/benchmarks.md (one JSON object per line).
result() {
  [ -n "${MULTINODE_OUT:-}" ] || return 0
  mkdir -p "$MULTINODE_OUT"
  printf '{"case": "%s", "at": "%s", "result": %s}\n' "$1" "$(date -u +%FT%TZ)" "$2" >>"$MULTINODE_OUT/results.jsonl"
}

last_epoch() { grep 'msg="cut committed" component=coordinator' "$1" | sed -n 's/.* epoch=\([0-9]*\).*/\1/p' | tail -1; }
wait_epoch() {
  for _ in $(seq 1 1800); do
    [ "$(last_epoch "$1")" -ge "$2" ] 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

check_digest() {
  [ "$2" = "$ref" ] || fail "$1: digest ${2:-none}, undisturbed $ref"
  echo "$1: digest $2 = undisturbed"
  "$bin" verify --store "$D/shared/store-$1" --log-level warn >/dev/null || fail "$1: the store does not verify"
}

# no_rank_left CASE: only the NATS servers may still run in the hosts.
no_rank_left() {
  for i in $(seq 1 "$nhosts"); do
    has_host "h$i" || continue
    for p in $(ip netns pids "cpbed-h$i"); do
      [ "$p" = "${natspid[i]}" ] && continue
      if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q ' rank'; then
        fail "$1: a rank is still running in h$i: $(tr '\0' ' ' <"/proc/$p/cmdline")"
      fi
    done
  done
}
has_host() { ip netns list | awk '{print $1}' | grep -qx "cpbed-$1"; }

# wait_pid LABEL PID LOG: wait (at most 180 s) for PID to exit 0.
wait_pid() {
  local t0=$SECONDS
  while kill -0 "$2" 2>/dev/null; do
    [ $((SECONDS - t0)) -lt 180 ] || fail "$1: the job did not end in 180 s: $(tail -5 "$3")"
    sleep 0.1
  done
  wait "$2" || fail "$1: exit $?: $(tail -5 "$3")"
}

declare -a busypids=()
busy_start() {
  busypids=()
  for _ in $(seq 1 "$(nproc)"); do
    "$bed" exec h3 sh -c 'while :; do :; done' &
    busypids+=($!)
    pids+=($!)
  done
}
busy_stop() {
  for p in "${busypids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  busypids=()
}

# load_job LABEL: the load job under `run --hosts` with the default
# heartbeat and failure timeout, busy loops on every core meanwhile. Sets
# digest, lost (rank-lost events), silent (of them, by silence) and
# elapsed (seconds).
load_job() {
  local label=$1 store=$D/shared/store-$1 out=$D/node/h1/run-$1
  mkdir -p "$store"
  busy_start
  local t0
  t0=$(date +%s.%N)
  "$bed" exec h1 env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" "$bin" run --store "$store" --ranks "$nranks" \
    --hosts cpbed-h1:2,cpbed-h2:2,cpbed-h3:2 --spawn-cmd 'ip netns exec {host} {cmd}' \
    --interval 0 --every-steps 200 --size "$load_size" --steps "$load_steps" \
    </dev/null >"$out.out" 2>"$out.log" &
  local runpid=$!
  pids+=($runpid)
  wait_pid "$label" "$runpid" "$out.log"
  elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  busy_stop
  digest=$(tail -1 "$out.out" | awk '$1 == "result" {print $2}')
  lost=$(grep -c 'rank-lost' "$out.log" || true)
  silent=$(grep 'rank-lost' "$out.log" | grep -c 'silent for' || true)
  # The coordinator's own view at the end: the longest a running rank
  # went unheard, and the longest the coordinator itself did not run.
  maxsil=$(dur_s "$(sed -n 's/.*msg="job over".* max_silence=\([^ ]*\).*/\1/p' "$out.log" | tail -1)")
  maxstall=$(dur_s "$(sed -n 's/.*msg="job over".* max_stall=\([^ ]*\).*/\1/p' "$out.log" | tail -1)")
}

# dur_s D: a Go duration (1.5s, 800ms, 0s) in seconds.
dur_s() {
  case $1 in
    *ms) awk -v v="${1%ms}" 'BEGIN {printf "%.3f", v / 1000}' ;;
    *m*s) awk -v m="${1%%m*}" -v v="${1#*m}" 'BEGIN {sub("s", "", v); printf "%.3f", m * 60 + v}' ;;
    *s) awk -v v="${1%s}" 'BEGIN {printf "%.3f", v}' ;;
    *) echo null ;;
  esac
}

for c in $cases; do
  case $c in
    cluster)
      say "cluster: 3 servers, coordinator in h1, ranks 0..3 in h1 h2 h3 h1"
      start_nats
      run_job cluster "1 2 3 1" 0
      check_digest cluster "$digest"
      # Every rank dialed its own host's server first.
      pl=(1 2 3 1)
      for r in 0 1 2 3; do
        h=h${pl[r]}
        grep -q "msg=\"nats connected\".*@$("$bed" addr "${pl[r]}"):4222" "$D/node/$h/rank$r-cluster.log" ||
          fail "cluster: rank $r did not dial its host's server: $(grep 'nats connected' "$D/node/$h/rank$r-cluster.log")"
      done
      echo "cluster: every rank dialed its own host's server"
      stop_nats
      ;;
    kill)
      say "kill: h3's server, then h1's, SIGKILLed while the job runs"
      start_nats
      run_job kill "1 2 3 1" 1
      check_digest kill "$digest"
      grep -q "nats reconnected" "$D/node/h1/coord-kill.log" || fail "kill: the coordinator logged no reconnect"
      for f in "$D/node/h3/rank2-kill.log" "$D/node/h1/rank0-kill.log" "$D/node/h1/rank3-kill.log"; do
        grep -q "nats reconnected" "$f" || fail "kill: $(basename "$f") logged no reconnect"
      done
      if grep -rqF "$token" "$D"/node/*/*.log; then fail "kill: a log shows the NATS token"; fi
      echo "kill: coordinator and ranks of h1 and h3 failed over; no log shows the token"
      stop_nats
      ;;
    measure)
      say "measure: NATS bytes per step through each server, packed vs spread"
      # Placement "a b c d": rank r on host h${placement[r]}. heat2d's 2x2
      # grid makes ranks 0-1, 0-2, 1-3 and 2-3 neighbours.
      printf '%-9s %-6s %12s %12s %14s\n' placement server in/step out/step route-in/step
      for placement in "1 1 1 1" "1 1 2 2" "1 2 3 1"; do
        start_nats
        declare -A in0 out0 rin0
        for i in 1 2 3; do
          v=$(varz "h$i"); in0[$i]=$(field "$v" in_bytes); out0[$i]=$(field "$v" out_bytes); rin0[$i]=$(route_in "h$i")
        done
        label=measure-$(tr -d ' ' <<<"$placement")
        run_job "$label" "$placement" 0
        check_digest "$label" "$digest" >/dev/null
        for i in 1 2 3; do
          v=$(varz "h$i")
          di=$(($(field "$v" in_bytes) - ${in0[$i]})); do=$(($(field "$v" out_bytes) - ${out0[$i]}))
          dr=$(($(route_in "h$i") - ${rin0[$i]}))
          printf '%-9s %-6s %12d %12d %14d\n' "$(tr -d ' ' <<<"$placement")" "h$i" $((di / steps)) $((do / steps)) $((dr / steps))
          result measure "{\"placement\": \"$(tr -d ' ' <<<"$placement")\", \"server\": \"h$i\", \"in_per_step\": $((di / steps)), \"out_per_step\": $((do / steps)), \"route_in_per_step\": $((dr / steps)), \"steps\": $steps, \"size\": $size}"
        done
        stop_nats
      done
      ;;
    hostloss | partition)
      if [ "$c" = hostloss ]; then
        say "hostloss: run --hosts over the bed, host h2 killed whole after the first cut"
      else
        say "partition: run --hosts over the bed, host h2 cut off the network for 10 s after the first cut, then healed"
      fi
      start_nats
      store=$D/shared/store-$c out=$D/node/h1/run-$c
      mkdir -p "$store"
      # The ranks' NATS URL (with the token) reaches them on stdin, never on
      # the spawn command's argv.
      "$bed" exec h1 env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" "$bin" run --store "$store" --ranks "$nranks" \
        --hosts cpbed-h1:2,cpbed-h2:2,cpbed-h3:2 --spawn-cmd 'ip netns exec {host} {cmd}' \
        --interval 0 --every-steps 100 --heartbeat-interval 100ms --size "$size" --steps "$steps" \
        </dev/null >"$out.out" 2>"$out.log" &
      runpid=$!
      pids+=($runpid)
      wait_epoch "$out.log" 1 || fail "$c: no first cut: $(tail -5 "$out.log")"
      if [ "$c" = hostloss ]; then
        victims=$(ip netns pids cpbed-h2 | tr '\n' ' ')
        [ -n "$victims" ] || fail "hostloss: nothing runs in h2"
        killed_at=$(date +%s.%N)
        # shellcheck disable=SC2086
        kill -9 $victims 2>/dev/null || true
        echo "hostloss: SIGKILLed every process of h2 (pids $victims) after cut $(last_epoch "$out.log")"
      else
        "$bed" cut h2
        echo "partition: h2 cut off after cut $(last_epoch "$out.log")"
        sleep 10
        "$bed" heal h2
        echo "partition: h2 healed"
      fi
      t0=$SECONDS
      while kill -0 "$runpid" 2>/dev/null; do
        [ $((SECONDS - t0)) -lt 180 ] || fail "$c: the job did not end in 180 s: $(tail -5 "$out.log")"
        sleep 0.1
      done
      wait "$runpid" || fail "$c: run exit $?: $(tail -5 "$out.log")"
      digest=$(tail -1 "$out.out" | awk '$1 == "result" {print $2}')
      check_digest "$c" "$digest"
      if [ "$c" = hostloss ]; then
        grep -q 'msg="host down: its ranks restart on other hosts" host=cpbed-h2' "$out.log" ||
          fail "hostloss: h2 was not marked down: $(grep -i host "$out.log" | tail -5)"
      else
        grep -q 'rank-lost' "$out.log" || fail "partition: no rank was declared lost while h2 was cut off"
      fi
      # No rank is left running anywhere: only the NATS servers remain.
      for i in 1 2 3; do
        for p in $(ip netns pids "cpbed-h$i"); do
          [ "$p" = "${natspid[i]}" ] && continue
          if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q ' rank'; then
            fail "$c: a rank is still running in h$i: $(tr '\0' ' ' <"/proc/$p/cmdline")"
          fi
        done
      done
      if grep -qF "$token" "$out.log"; then fail "$c: the run log shows the NATS token"; fi
      echo "$c: ranks of h2 replaced; no rank left running; no log shows the token"
      if [ "$c" = hostloss ]; then
        # Recovery after the host loss: detection (the kill to the first
        # rank-lost), then respawn + restore until every rank runs again
        # (recovery-finished of the last incarnation started).
        lost_at=$(logtime "$(grep -m1 'rank-lost' "$out.log")")
        done_at=$(logtime "$(grep 'recovery-finished' "$out.log" | tail -1)")
        detect=$(awk -v a="$killed_at" -v b="$lost_at" 'BEGIN {printf "%.3f", b - a}')
        total=$(awk -v a="$killed_at" -v b="$done_at" 'BEGIN {printf "%.3f", b - a}')
        nrec=$(grep -c 'recovery-started' "$out.log" || true)
        echo "hostloss: detection ${detect} s, kill to running again ${total} s, $nrec recoveries"
        result hostloss "{\"detect_s\": $detect, \"kill_to_running_s\": $total, \"recoveries\": $nrec, \"ranks\": $nranks, \"size\": $size, \"heartbeat\": \"100ms\"}"
      fi
      stop_nats
      ;;
    levels | levels-rs)
      # The hosts are named h1.. here (the spawn command adds the cpbed-
      # prefix) so that --local's {host} names the bed's node-local
      # directories, node/hN.
      if [ "$c" = levels ]; then
        red=partner hostlist=h1:2,h2:2,h3:2 spare=h3 survivors="0 1" moved="2 3" from=partner
      else
        nhosts=5
        CPBED_HOSTS=5 "$bed" up >/dev/null
        red=rs:2+1 hostlist=h1:1,h2:1,h3:1,h4:1,h5:1 spare=h5 survivors="0 2 3" moved="1" from=rs
      fi
      # Long enough for cuts after the recovery, whose copies show the
      # ranks moving to a new partner or new fragment hosts (with $steps
      # the job may end first): its own undisturbed digest.
      csteps=$((steps * 3))
      cref=$(run_in h1 "$bin" run --store "$D/node/h1/ref-store-$c" --interval 0 --ranks "$nranks" --size "$size" \
        --steps "$csteps" --log-level warn | tail -1 | awk '$1 == "result" {print $2}')
      [ -n "$cref" ] || fail "$c: no reference digest for $csteps steps"
      say "$c: run --hosts $hostlist --local node/{host} --redundancy $red --flush-every 3; host h2 killed whole and its node-local directory wiped after the first cut"
      start_nats
      store=$D/shared/store-$c out=$D/node/h1/run-$c stats=$D/shared/stats-$c
      rm -rf "$store" "$stats" "$D"/node/h*/local-"$c" # the case may be listed more than once
      mkdir -p "$store"
      "$bed" exec h1 env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" "$bin" run --store "$store" --ranks "$nranks" \
        --hosts "$hostlist" --spawn-cmd 'ip netns exec cpbed-{host} {cmd}' \
        --local "$D/node/{host}/local-$c" --redundancy "$red" --flush-every 3 --stats-dir "$stats" \
        --interval 0 --every-steps 100 --heartbeat-interval 100ms --size "$size" --steps "$csteps" \
        </dev/null >"$out.out" 2>"$out.log" &
      runpid=$!
      pids+=($runpid)
      wait_epoch "$out.log" 1 || fail "$c: no first cut: $(tail -5 "$out.log")"
      # The first cut must be held by the node-local levels (the commit
      # waits for the copy on another host).
      [ -n "$(ls -A "$D/node/h2/local-$c" 2>/dev/null)" ] || fail "$c: h2's node-local directory is empty after cut 1"
      victims=$(ip netns pids cpbed-h2 | tr '\n' ' ')
      [ -n "$victims" ] || fail "$c: nothing runs in h2"
      # shellcheck disable=SC2086
      kill -9 $victims 2>/dev/null || true
      rm -rf "$D/node/h2/local-$c"
      echo "$c: SIGKILLed every process of h2 (pids $victims: its ranks and NATS server) after cut $(last_epoch "$out.log"); h2's node-local directory wiped"
      wait_pid "$c" "$runpid" "$out.log"
      digest=$(tail -1 "$out.out" | awk '$1 == "result" {print $2}')
      [ "$digest" = "$cref" ] || fail "$c: digest ${digest:-none}, undisturbed $cref"
      echo "$c: digest $digest = undisturbed"
      "$bin" verify --store "$store" --local "$D/node/{host}/local-$c" --log-level warn >/dev/null ||
        fail "$c: the store and node-local levels do not verify"
      grep -q 'msg="host down: its ranks restart on other hosts" host=h2' "$out.log" ||
        fail "$c: h2 was not marked down: $(grep -i host "$out.log" | tail -5)"
      grep -q 'recovery-finished' "$out.log" || fail "$c: no recovery in the run's log"
      for r in $moved; do
        grep -q "msg=\"rank started\" rank=$r host=$spare" "$out.log" || fail "$c: rank $r not respawned on $spare"
      done
      no_rank_left "$c"
      # The ranks' own counters (one stats file per rank process that
      # exited by itself: the SIGKILLed ones wrote none): restore bytes by
      # level, flushed and copied bytes, and exactly one finished process
      # per rank (no rank ran to the end twice).
      python3 - "$stats" "$nranks" "$from" "$survivors" "$moved" <<'PY' || fail "$c: the ranks' counters"
import glob, json, sys
d, n, frm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
survivors = [int(x) for x in sys.argv[4].split()]
moved = [int(x) for x in sys.argv[5].split()]
per, files, total, flushed, copied = {}, {}, {}, 0, 0
changes, fallback, fmoves = {}, {}, {}
for f in glob.glob(d + "/rank-*-spawn-*.json"):
    r = json.load(open(f))
    files.setdefault(r["rank"], []).append((r["spawn"], r.get("error", "")))
    changes[r["rank"]] = changes.get(r["rank"], 0) + r.get("partner_changes", 0)
    fallback[r["rank"]] = fallback.get(r["rank"], 0) + r.get("fallback_bytes", 0)
    fmoves[r["rank"]] = fmoves.get(r["rank"], 0) + r.get("fragment_moves", 0)
    for lv, b in (r.get("restore_bytes") or {}).items():
        per.setdefault(r["rank"], {}).setdefault(lv, 0)
        per[r["rank"]][lv] += b
        total[lv] = total.get(lv, 0) + b
    flushed += r.get("flush_bytes", 0)
    copied += r.get("partner_bytes", 0)
print("restore bytes by level:", json.dumps(total, sort_keys=True))
for r in sorted(per):
    print("  rank %d:" % r, json.dumps(per[r], sort_keys=True))
print("bytes flushed to the shared store %d, copied to other hosts %d" % (flushed, copied))
bad = []
for r in range(n):
    if len(files.get(r, [])) != 1:
        bad.append("rank %d: %d processes ran to the end %s, want 1" % (r, len(files.get(r, [])), files.get(r)))
    elif files[r][0][1]:
        bad.append("rank %d ended with %r" % (r, files[r][0][1]))
if total.get("shared", 0) != 0:
    bad.append("the recovery read %d bytes from the shared store" % total["shared"])
for r in survivors:
    if per.get(r, {}).get("local", 0) == 0:
        bad.append("survivor rank %d read nothing from its own node-local copy" % r)
for r in moved:
    if per.get(r, {}).get(frm, 0) == 0:
        bad.append("respawned rank %d read nothing from the %s level" % (r, frm))
    if files.get(r) and files[r][0][0] == 0:
        bad.append("rank %d finished in its first process, not a respawned one" % r)
if flushed == 0 or copied == 0:
    bad.append("want bytes both flushed and copied")
print("partner changes per rank:", json.dumps(changes, sort_keys=True), "fragment moves per rank:", json.dumps(fmoves, sort_keys=True),
      "fallback bytes per rank:", json.dumps(fallback, sort_keys=True))
if frm == "partner":
    # h1's partner h2 is gone: h1's ranks move their copies to h3 (once
    # each) and send no shard to the shared store for want of a copy; the
    # ranks respawned on h3 keep their first choice, h1.
    for r in survivors:
        if changes.get(r, 0) != 1:
            bad.append("survivor rank %d: %d partner changes, want 1 (h2 to h3)" % (r, changes.get(r, 0)))
    for r in moved:
        if changes.get(r, 0) != 0:
            bad.append("respawned rank %d: %d partner changes, want 0" % (r, changes.get(r, 0)))
if frm == "rs":
    # Every rank's fragments had a first choice on h2: the survivors move
    # that fragment to h5 (once each), rank 1 on h5 its own to h4.
    for r in survivors + moved:
        if fmoves.get(r, 0) != 1:
            bad.append("rank %d: %d fragment moves, want 1 (the fragment for h2)" % (r, fmoves.get(r, 0)))
for r, b in sorted(fallback.items()):
    if b:
        bad.append("rank %d sent %d bytes to the shared store for want of a copy on another host" % (r, b))
for b in bad:
    print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
      if grep -qF "$token" "$out.log"; then fail "$c: the run log shows the NATS token"; fi
      if [ "$c" = levels ]; then
        n=$(grep -c 'msg="partner copies go to another host".* from=h2 to=h3' "$out.log" || true)
        [ "$n" = 2 ] || fail "$c: $n partner moves from h2 to h3 logged, want 2 (ranks 0 and 1): $(grep 'partner copies go' "$out.log" | tail -5)"
        echo "$c: h1's ranks moved their partner copies from h2 to h3 (logged once each), no shard sent to the shared store for want of a copy"
      else
        n=$(grep -c 'msg="erasure fragments go to other hosts".* moves="\[fragment [0-9]: h2 to h[45]\]"' "$out.log" || true)
        [ "$n" = 4 ] || fail "$c: $n fragment moves away from h2 logged, want 4 (one per rank): $(grep 'erasure fragments go' "$out.log" | tail -5)"
        echo "$c: every rank moved its fragment for h2 to another host (logged once each), no shard sent to the shared store for want of a fragment host"
      fi
      echo "$c: h2's ranks rebuilt on $spare from the $from level, the survivors from their own node-local copies; 0 bytes read from the shared store"
      stop_nats
      nhosts=3
      ;;
    standby)
      say "standby: coordinator in h1, a standby in h2; host h1 killed whole after the first cut"
      start_nats
      store=$D/shared/store-standby
      rm -rf "$store" # the case may be listed more than once
      mkdir -p "$store"
      flags=(coordinator --store "$store" --ranks "$nranks" --spawn local
        --hosts cpbed-h1:2,cpbed-h2:2,cpbed-h3:2 --spawn-cmd 'ip netns exec {host} {cmd}'
        --interval 0 --every-steps 100 --heartbeat-interval 100ms --lease-ttl 3s --size "$size" --steps "$steps")
      sb=$D/node/h2/standby
      # The coordinator and its standby hold one job key (the ranks get
      # their own keys from whichever coordinator spawns them), in the
      # environment: a prefix assignment, not on any argv.
      key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
      CUTPOINT_JOB_KEY=$key "$bed" exec h2 env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" "$bin" "${flags[@]}" --standby \
        </dev/null >"$sb.out" 2>"$sb.log" &
      sbpid=$!
      pids+=($sbpid)
      out=$D/node/h1/coord-standby
      CUTPOINT_JOB_KEY=$key "$bed" exec h1 env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" "$bin" "${flags[@]}" \
        </dev/null >"$out.out" 2>"$out.log" &
      pids+=($!)
      wait_epoch "$out.log" 1 || fail "standby: no first cut: $(tail -5 "$out.log")"
      grep -q 'expired: taking over' "$sb.log" && fail "standby: took over a live job: $(tail -5 "$sb.log")"
      victims=$(ip netns pids cpbed-h1 | tr '\n' ' ')
      killed_at=$(date +%s.%N)
      # shellcheck disable=SC2086
      kill -9 $victims 2>/dev/null || true
      ip netns del cpbed-h1
      echo "standby: SIGKILLed every process of h1 (pids $victims: coordinator, NATS server, ranks 0 and 1) after cut $(last_epoch "$out.log"); h1 removed"
      wait_pid standby "$sbpid" "$sb.log"
      digest=$(tail -1 "$sb.out" | awk '$1 == "result" {print $2}')
      check_digest standby "$digest"
      grep -q 'expired: taking over' "$sb.log" || fail "standby: no takeover in its log: $(tail -5 "$sb.log")"
      grep -q 'msg="host down: its ranks restart on other hosts" host=cpbed-h1' "$sb.log" ||
        fail "standby: h1 was not marked down: $(grep -i host "$sb.log" | tail -5)"
      for r in 0 1; do
        grep -q "msg=\"rank started\" rank=$r host=cpbed-h3" "$sb.log" || fail "standby: rank $r not respawned on h3"
      done
      no_rank_left standby
      if grep -rqF "$token" "$sb.log" "$out.log"; then fail "standby: a log shows the NATS token"; fi
      echo "standby: the standby took over, ranks 0 and 1 respawned on h3; no rank left running; no log shows the token"
      # The takeover: the kill to the standby's coordinator start (the
      # lease expiry), then to every rank running again.
      took_at=$(logtime "$(grep -m1 'msg="coordinator started"' "$sb.log")")
      done_at=$(logtime "$(grep 'recovery-finished' "$sb.log" | tail -1)")
      takeover=$(awk -v a="$killed_at" -v b="$took_at" 'BEGIN {printf "%.3f", b - a}')
      total=$(awk -v a="$killed_at" -v b="$done_at" 'BEGIN {printf "%.3f", b - a}')
      echo "standby: kill to takeover ${takeover} s (lease ttl 3s), kill to running again ${total} s"
      result standby "{\"takeover_s\": $takeover, \"kill_to_running_s\": $total, \"lease_ttl\": \"3s\", \"ranks\": $nranks, \"size\": $size, \"heartbeat\": \"100ms\"}"
      stop_nats
      "$bed" up >/dev/null
      ;;
    standby-moved)
      say "standby-moved: host h2 killed whole, its ranks moved to h3; then the coordinator's host h1 killed; the standby in h3 adopts the placement record"
      start_nats
      store=$D/shared/store-standby-moved
      rm -rf "$store"
      mkdir -p "$store"
      flags=(coordinator --store "$store" --ranks "$nranks" --spawn local
        --hosts cpbed-h1:2,cpbed-h2:2,cpbed-h3:4 --spawn-cmd 'ip netns exec {host} {cmd}'
        --interval 0 --every-steps 100 --heartbeat-interval 100ms --lease-ttl 3s --size "$size" --steps "$steps")
      sb=$D/node/h3/standby-moved
      key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
      CUTPOINT_JOB_KEY=$key "$bed" exec h3 env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" "$bin" "${flags[@]}" --standby \
        </dev/null >"$sb.out" 2>"$sb.log" &
      sbpid=$!
      pids+=($sbpid)
      out=$D/node/h1/coord-standby-moved
      CUTPOINT_JOB_KEY=$key "$bed" exec h1 env CUTPOINT_CONFIG=/dev/null CUTPOINT_NATS="$urls" "$bin" "${flags[@]}" \
        </dev/null >"$out.out" 2>"$out.log" &
      pids+=($!)
      wait_epoch "$out.log" 1 || fail "standby-moved: no first cut: $(tail -5 "$out.log")"
      victims=$(ip netns pids cpbed-h2 | tr '\n' ' ')
      # shellcheck disable=SC2086
      kill -9 $victims 2>/dev/null || true
      ip netns del cpbed-h2
      echo "standby-moved: SIGKILLed every process of h2 (ranks 2 and 3, its NATS server) after cut $(last_epoch "$out.log"); h2 removed"
      for r in 2 3; do
        for _ in $(seq 1 600); do grep -q "msg=\"rank started\" rank=$r host=cpbed-h3" "$out.log" && break; sleep 0.1; done
        grep -q "msg=\"rank started\" rank=$r host=cpbed-h3" "$out.log" || fail "standby-moved: rank $r not moved to h3: $(tail -5 "$out.log")"
      done
      # The record is written under the lease as the placement changes;
      # a cut after the move shows the job runs again on h1 and h3.
      rec=$store/jobs/heat2d/placement.json
      for _ in $(seq 1 600); do grep -q cpbed-h2 "$rec" 2>/dev/null && break; sleep 0.1; done
      grep -q cpbed-h2 "$rec" 2>/dev/null || fail "standby-moved: no placement record naming h2 down: $(cat "$rec" 2>&1)"
      wait_epoch "$out.log" $(($(last_epoch "$out.log") + 1)) || fail "standby-moved: no cut after the move: $(tail -5 "$out.log")"
      victims=$(ip netns pids cpbed-h1 | tr '\n' ' ')
      # shellcheck disable=SC2086
      kill -9 $victims 2>/dev/null || true
      ip netns del cpbed-h1
      echo "standby-moved: SIGKILLed every process of h1 (coordinator, NATS server, ranks 0 and 1) after cut $(last_epoch "$out.log"); h1 removed"
      wait_pid standby-moved "$sbpid" "$sb.log"
      digest=$(tail -1 "$sb.out" | awk '$1 == "result" {print $2}')
      check_digest standby-moved "$digest"
      grep -q 'expired: taking over' "$sb.log" || fail "standby-moved: no takeover in its log: $(tail -5 "$sb.log")"
      grep -q 'msg="placement of the previous coordinator adopted"' "$sb.log" ||
        fail "standby-moved: the standby did not adopt the placement record: $(grep -i placement "$sb.log" | tail -5)"
      # The record kept the standby off the dead host: it never tried h2
      # (a try would fail and log the host down, as for h1).
      if grep -E 'msg="(rank started|spawn failed|host down: its ranks restart on other hosts)".*cpbed-h2' "$sb.log"; then
        fail "standby-moved: the standby tried the dead host h2 again"
      fi
      for r in 0 1; do
        grep -q "msg=\"rank started\" rank=$r host=cpbed-h3" "$sb.log" || fail "standby-moved: rank $r not respawned on h3"
      done
      no_rank_left standby-moved
      echo "standby-moved: the standby adopted the record (h2 down), never tried h2, respawned ranks 0 and 1 on h3; no rank left running"
      stop_nats
      "$bed" up >/dev/null
      ;;
    load)
      say "load: $(nproc) busy loops (every core) during the job, default heartbeat and failure timeout"
      lref=$(run_in h1 "$bin" run --store "$D/node/h1/ref-load" --interval 0 --ranks "$nranks" --size "$load_size" \
        --steps "$load_steps" --log-level warn | tail -1 | awk '$1 == "result" {print $2}')
      start_nats
      load_job load
      [ "$digest" = "$lref" ] || fail "load: digest ${digest:-none}, undisturbed $lref"
      [ "$lost" = 0 ] || fail "load: $lost ranks declared lost ($silent by silence) under load: $(grep rank-lost "$D/node/h1/run-load.log" | head -3)"
      echo "load: ${elapsed} s at 100 % CPU on every core, 0 ranks lost (longest silence ${maxsil} s of 2.5, coordinator stall ${maxstall} s), digest $digest = undisturbed"
      stop_nats
      ;;
    measure-load)
      dur=${MULTINODE_LOAD_SECONDS:-900}
      say "measure-load: the load job repeated for ${dur} s, busy loops on every core"
      lref=$(run_in h1 "$bin" run --store "$D/node/h1/ref-load" --interval 0 --ranks "$nranks" --size "$load_size" \
        --steps "$load_steps" --log-level warn | tail -1 | awk '$1 == "result" {print $2}')
      start_nats
      jobs=0 tlost=0 tsilent=0 exposure=0 bad=0 wsil=0 wstall=0
      la0=$(cut -d' ' -f1 /proc/loadavg)
      t0=$SECONDS
      while [ $((SECONDS - t0)) -lt "$dur" ]; do
        jobs=$((jobs + 1))
        load_job "mload-$jobs"
        [ "$digest" = "$lref" ] || bad=$((bad + 1))
        tlost=$((tlost + lost)) tsilent=$((tsilent + silent))
        wsil=$(awk -v a="$wsil" -v b="$maxsil" 'BEGIN {print (b + 0 > a + 0) ? b : a}')
        wstall=$(awk -v a="$wstall" -v b="$maxstall" 'BEGIN {print (b + 0 > a + 0) ? b : a}')
        exposure=$(awk -v a="$exposure" -v b="$elapsed" 'BEGIN {printf "%.1f", a + b}')
        echo "measure-load: job $jobs: ${elapsed} s, $lost lost ($silent by silence), longest silence ${maxsil} s, stall ${maxstall} s, load $(cut -d' ' -f1 /proc/loadavg)"
        rm -rf "$D/shared/store-mload-$jobs"
      done
      la1=$(cut -d' ' -f1 /proc/loadavg)
      perh=$(awk -v n="$tlost" -v s="$exposure" 'BEGIN {printf "%.2f", n * 3600 / s}')
      echo "measure-load: $tlost false losses ($tsilent by silence) in ${exposure} s under load over $jobs jobs ($perh per hour); $bad wrong digests"
      result measure-load "{\"jobs\": $jobs, \"exposure_s\": $exposure, \"rank_lost\": $tlost, \"silent\": $tsilent, \"per_hour\": $perh, \"wrong_digests\": $bad, \"max_silence_s\": $wsil, \"max_coordinator_stall_s\": $wstall, \"ranks\": $nranks, \"size\": $load_size, \"steps\": $load_steps, \"busy_loops\": $(nproc), \"nproc\": $(nproc), \"heartbeat\": \"default (500ms)\", \"failure_timeout\": \"default (2.5s)\", \"loadavg_start\": $la0, \"loadavg_end\": $la1}"
      [ "$bad" = 0 ] || fail "measure-load: $bad jobs ended with a wrong digest"
      stop_nats
      ;;
    *) fail "unknown case $c" ;;
  esac
done
echo "multinode-test: all cases passed ($cases)"
