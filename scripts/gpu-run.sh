#!/usr/bin/env bash
# gpu-run.sh: run the GPU tests and measurements built by `make gpu-test-bin`
# on a machine with an NVIDIA GPU and its driver (libcuda.so.1). `make
# gpu-test-bin` copies it as run.sh next to the binaries; copy that folder to
# the GPU machine and run it there:
#
#   bin/gpu/run.sh [RESULTS_DIR]        # default: ./gpu-results
#
# The steps, in order of what matters most, each skipped with a note once
# less than its share of BUDGET_S (default 450 s: a lent machine's time is
# short) is left:
#   1. every *.test binary of its folder (the cuda-tagged tests);
#   2. TestReport at each size of REPORT_GIBS (default "4 16"): capture,
#      restore (whole pageable copy against pieces through pinned slots),
#      incremental, kernels -> report-<N>.md;
#   3. TestLargeState (-large LARGE_FRAC, default 0.55 of the free GPU
#      memory: the direct capture path, restore in pieces) -> large.md;
#   4. heat2d jobs with the cuda cutpoint binary: a small one on cuda and on
#      cpu whose digests must match, and a 1 GiB one on cuda with a rank
#      SIGKILLed and without, whose digests must match (the SIGKILLed
#      rank's replacement restores through the pinned slots);
#   5. the harness's job family on cuda: 60 s jobs with a cut every 10 s
#      (5 or more cuts per run), the SafePoint and the captures' time on
#      the job's stream (CUDA events), recovery -> bench-job/;
#   6. the harness's store family on cuda (full against incremental cuts
#      by durable time, STORE_MAX default 1GiB) -> bench-store/.
# Logs land in RESULTS_DIR; the exit status is non-zero if anything failed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$PWD/gpu-results}
mkdir -p "$out"
status=0
budget=${BUDGET_S:-450}
note() { echo "[gpu-run] $(date -u +%H:%M:%S) $*" | tee -a "$out/summary.txt"; }
# left NEED: true when at least NEED seconds of the budget are left.
left() {
  if ((budget - SECONDS < $1)); then
    note "skipped (${SECONDS}s of ${budget}s used; this step needs about $1 s): $2"
    return 1
  fi
}
fail() { note "$1: FAIL (see $2)"; status=1; }

command -v nvidia-smi >/dev/null && nvidia-smi -L | tee "$out/gpu.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$out/gpu.txt"
nproc >"$out/cpus.txt"
if ! ldconfig -p | grep -q 'libcuda.so.1 '; then
  note "no libcuda.so.1 on this machine: the binaries cannot start"
  exit 1
fi

for t in "$here"/*.test; do
  name=$(basename "$t" .test)
  note "running $name tests"
  if timeout -k 5 240 "$t" -test.v -test.count=1 -test.timeout=230s >"$out/$name.log" 2>&1; then
    note "$name: PASS"
  else
    fail "$name" "$name.log"
  fi
  grep -E '^(--- FAIL|FAIL|ok|PASS)' "$out/$name.log" | tail -n 20 >>"$out/summary.txt" || true
done

table() { # log -> markdown rows
  grep -E '^\s+report_test.go:[0-9]+: ' "$1" | sed -E 's/^\s+report_test.go:[0-9]+: //'
}
report=$here/kernels-cuda.test
if [[ -x $report ]]; then
  for gib in ${REPORT_GIBS:-4 16}; do
    left $((10 + 8 * gib)) "TestReport at $gib GiB" || continue
    note "measuring (TestReport, $gib GiB)"
    if timeout -k 5 300 "$report" -test.run '^TestReport$' -test.v -report -report.gib "$gib" >"$out/report-$gib.log" 2>&1; then
      table "$out/report-$gib.log" >"$out/report-$gib.md"
      note "report: report-$gib.md"
    else
      fail "TestReport $gib GiB" "report-$gib.log"
    fi
  done
  if left 90 "TestLargeState"; then
    note "large state (TestLargeState, ${LARGE_FRAC:-0.55} of the free GPU memory)"
    if timeout -k 5 240 "$report" -test.run '^TestLargeState$' -test.v -large "${LARGE_FRAC:-0.55}" >"$out/large.log" 2>&1; then
      table "$out/large.log" >"$out/large.md"
      note "large state: large.md"
    else
      fail "TestLargeState" "large.log"
    fi
  fi
fi

cp_bin=$here/cutpoint-cuda
job() { # name, then run arguments
  local name=$1 store
  shift
  store=$(mktemp -d)
  note "heat2d $name"
  if timeout -k 5 300 "$cp_bin" run --store "$store" --job "gpu-$name" "$@" >"$out/job-$name.log" 2>&1; then
    tail -n 1 "$out/job-$name.log" >"$out/job-$name.result"
  else
    fail "$name" "job-$name.log"
  fi
  rm -rf "$store"
}
same() { # two job names whose digests must match
  if [[ -s $out/job-$1.result && -s $out/job-$2.result ]] && cmp -s "$out/job-$1.result" "$out/job-$2.result"; then
    note "$1 and $2: same digest: $(cat "$out/job-$1.result")"
  else
    note "$1 and $2: digests differ or missing"
    status=1
  fi
}
if [[ -x $cp_bin ]]; then
  if left 60 "heat2d jobs (cuda against cpu, SIGKILL against none)"; then
    small=(--ranks 2 --steps 3000 --size 512 --every-steps 200 --interval 0 --kill 1@1500)
    job small-cuda --device cuda "${small[@]}"
    job small-cpu --device cpu "${small[@]}"
    same small-cuda small-cpu
    big=(--device cuda --ranks 2 --steps 2000 --size 8190 --every-steps 250 --interval 0)
    job big-kill "${big[@]}" --kill 1@1200
    job big-plain "${big[@]}"
    same big-kill big-plain
  fi
  if left 200 "harness job family on cuda"; then
    note "harness job family (cuda: 60 s jobs, a cut every 10 s)"
    if ! timeout -k 5 300 "$cp_bin" bench --families job --devices cuda --reps 1 --job-window 60s --job-intervals 10s \
      --no-job-extras --no-scale --frozen -1 --seed 20261202 --out "$out/bench-job" >"$out/bench-job.log" 2>&1; then
      fail "bench job" "bench-job.log"
    fi
  fi
  if left 120 "harness store family on cuda"; then
    note "harness store family (cuda, up to ${STORE_MAX:-1GiB})"
    if ! timeout -k 5 $((budget - SECONDS)) "$cp_bin" bench --families store --devices cuda --store-max "${STORE_MAX:-1GiB}" \
      --seed 20261202 --out "$out/bench-store" >"$out/bench-store.log" 2>&1; then
      fail "bench store" "bench-store.log"
    fi
  fi
else
  note "no cutpoint-cuda next to run.sh: no jobs run"
  status=1
fi
note "done in ${SECONDS}s, status $status"
exit $status
