#!/bin/sh
# Multi-level cut figures (docs/benchmarks.md, "Multi-level cuts"): the same
# heat2d job (4 ranks on hosts a and b, local spawn, one machine) run
#   nocut    without cuts
#   shared   a cut every 2 s, every cut in --store (single level)
#   l12      a cut every 2 s on L1 + partner copies over NATS, never flushed
#   l12f10   the same, every 10th cut flushed to --store in the background
#   l12f1    the same, every cut flushed in the background
# and, for recovery, shared and l12 with rank 3 SIGKILLed at step KILL.
# Each case's run.json and rank files land in OUT/<case>/, one summary line
# per case in OUT/results.jsonl (jq).
#
# usage: scripts/levels-bench.sh [OUT] (default docs/bench/<today>/levels)
set -eu
OUT=${1:-docs/bench/$(date -u +%F)/levels}
STEPS=${STEPS:-2000}
SIZE=${SIZE:-1024}
KILL=${KILL:-1200}
REPS=${REPS:-2}
BIN=$(mktemp -d)/cutpoint
go build -o "$BIN" ./cmd/cutpoint
WORK=$(mktemp -d)
mkdir -p "$OUT"
: > "$OUT/results.jsonl"
uptime > "$OUT/load.txt"
nproc >> "$OUT/load.txt"
git rev-parse --short HEAD > "$OUT/commit.txt"

run_case() { # name rep extra-args...
	name=$1 rep=$2
	shift 2
	d=$WORK/$name-$rep
	rm -rf "$d"
	mkdir -p "$d"
	start=$(date +%s.%N)
	"$BIN" run --store "$d/store" --ranks 4 --size "$SIZE" --steps "$STEPS" --keep 2 \
		--hosts a:2,b:2,c:2 --spawn-cmd '{cmd}' --stats-dir "$d/stats" --progress never \
		--log-level warn "$@" > "$d/stdout" 2> "$d/stderr"
	end=$(date +%s.%N)
	mkdir -p "$OUT/$name-$rep"
	cp "$d/stats/"*.json "$OUT/$name-$rep/"
	shared=$(du -sb "$d/store/jobs" | cut -f1)
	flush=$(jq -s '[.[] | select(.rank != null) | .flush_bytes // 0] | add' "$d/stats/"rank*.json)
	partner=$(jq -s '[.[] | select(.rank != null) | .partner_bytes // 0] | add' "$d/stats/"rank*.json)
	stored=$(jq -s '[.[] | select(.rank != null) | .shard_stored_bytes // 0] | add' "$d/stats/"rank*.json)
	rb=$(jq -s -c '[.[] | select(.rank != null) | .restore_bytes // {}] | reduce .[] as $m ({}; reduce ($m|keys[]) as $k (.; .[$k] += $m[$k]))' "$d/stats/"rank*.json)
	jq -c --arg case "$name" --argjson rep "$rep" --argjson wall "$(echo "$end - $start" | bc)" \
		--argjson shared_bytes "$shared" --argjson flush "${flush:-0}" --argjson partner "${partner:-0}" --argjson stored "${stored:-0}" --argjson restore "$rb" \
		'{case: $case, rep: $rep, wall_s: $wall, run_s: ((.end_unix_ns - .running_unix_ns) / 1e9),
		  cuts: ((.cuts // []) | length), cut_took_ms: [(.cuts // [])[].took_ns / 1e6],
		  recovery_ms: [(.recoveries // [])[] | (.end_unix_ns - .start_unix_ns) / 1e6],
		  shared_store_bytes: $shared_bytes, shard_stored_bytes: $stored, flush_bytes: $flush, partner_bytes: $partner, restore_bytes: $restore}' \
		"$d/stats/run.json" | tee -a "$OUT/results.jsonl"
	rm -rf "$d"
}

# CASES picks a subset (e.g. CASES="nocut l12" REPS=8 for the overhead
# goal: l12's run time against nocut's, interleaved in every repetition).
CASES=${CASES:-nocut shared l12 l12f10 l12f1 shared-kill l12-kill}
want() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }
for rep in $(seq 1 "$REPS"); do
	if want nocut; then run_case nocut "$rep" --interval 0; fi
	if want shared; then run_case shared "$rep" --interval 2s; fi
	if want l12; then run_case l12 "$rep" --interval 2s --local "$WORK/l12-$rep/{host}" --redundancy partner --flush-every 100000; fi
	if want l12f10; then run_case l12f10 "$rep" --interval 2s --local "$WORK/l12f10-$rep/{host}" --redundancy partner --flush-every 10; fi
	if want l12f1; then run_case l12f1 "$rep" --interval 2s --local "$WORK/l12f1-$rep/{host}" --redundancy partner --flush-every 1; fi
	if want shared-kill; then run_case shared-kill "$rep" --interval 2s --kill 3@"$KILL"; fi
	if want l12-kill; then run_case l12-kill "$rep" --interval 2s --local "$WORK/l12k-$rep/{host}" --redundancy partner --flush-every 100000 --kill 3@"$KILL"; fi
	rm -rf "$WORK"/l12*-"$rep"
done
uptime >> "$OUT/load.txt"
