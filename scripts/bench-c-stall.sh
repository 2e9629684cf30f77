#!/usr/bin/env bash
# bench-c-stall.sh: a C job's cut stall against the Go job's for the same
# state (docs/benchmarks.md, "Jobs in other languages"). heat2d in Go
# (`cutpoint run --size N`) and in C (examples/c/heat2d.c on libcutpoint)
# on the same grid, steps and cut interval, in turn REPS times; each run's
# --stats-dir files hold every rank's cut stalls (how long the SafePoint
# that captured blocked the job), written the same way for both (the C job
# through libcutpoint's CUTPOINT_STATS_DIR). Prints one summary line per
# run; OUT keeps the stats files (the stores are deleted).
#
#   scripts/bench-c-stall.sh OUT   (after make build lib)
# Env: SIZE (2048), STEPS (3000), RANKS (2), IVL (cut interval, 2s), REPS (3).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: scripts/bench-c-stall.sh OUT}
SIZE=${SIZE:-2048} STEPS=${STEPS:-3000} RANKS=${RANKS:-2} IVL=${IVL:-2s} REPS=${REPS:-3}
CP=$ROOT/bin/cutpoint LIB=$ROOT/bin/lib
[ -x "$CP" ] && [ -f "$LIB/libcutpoint.so" ] || { echo "run make build lib first" >&2; exit 1; }
mkdir -p "$OUT"
CBIN=$OUT/heat2d-c
gcc -std=c99 -O2 -ffp-contract=off -Wall -Werror -I"$ROOT/cmd/libcutpoint/include" -o "$CBIN" \
  "$ROOT/examples/c/heat2d.c" "$ROOT/examples/c/sha256.c" -L"$LIB" -lcutpoint -Wl,-rpath,"$LIB" -lm
for i in $(seq "$REPS"); do
  for lang in go c; do
    d=$OUT/$lang-$i
    rm -rf "$d"
    mkdir -p "$d"
    if [ "$lang" = go ]; then job=(--size "$SIZE" --steps "$STEPS"); else job=(-- "$CBIN" "$SIZE" "$STEPS"); fi
    echo "$(date -u +%FT%TZ) $lang-$i: cutpoint run --ranks $RANKS --interval $IVL ${job[*]} (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/runs.txt"
    CUTPOINT_CONFIG=/dev/null "$CP" run --ranks "$RANKS" --interval "$IVL" --store "$d/store" --stats-dir "$d/stats" "${job[@]}" >"$d/stdout" 2>"$d/stderr"
    tail -n 1 "$d/stdout" | tee -a "$OUT/runs.txt"
    rm -rf "$d/store" "$d/stderr"
  done
done
rm -f "$CBIN"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import glob, json, os, statistics, sys
out = sys.argv[1]
for lang in ("go", "c"):
    every = []
    for d in sorted(glob.glob(os.path.join(out, lang + "-*"))):
        run = json.load(open(os.path.join(d, "stats", "run.json")))
        raw = sorted({c["raw_bytes"] for c in run.get("cuts") or []})
        st = []
        for f in sorted(glob.glob(os.path.join(d, "stats", "rank-*.json"))):
            st += [c["stall_ns"] / 1e6 for c in json.load(open(f)).get("capture_stalls") or []]
        st.sort()
        every += st
        if st:
            print(f"{os.path.basename(d)}: {len(run.get('cuts') or [])} cuts of {raw} raw bytes, {len(st)} rank stalls: "
                  f"median {statistics.median(st):.2f} ms, min {st[0]:.2f}, max {st[-1]:.2f}")
    if every:
        every.sort()
        q = statistics.quantiles(every, n=10)
        print(f"{lang} all runs: {len(every)} stalls, median {statistics.median(every):.2f} ms, p10 {q[0]:.2f}, p90 {q[-1]:.2f}, max {every[-1]:.2f}")
PY
