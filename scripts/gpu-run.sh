#!/usr/bin/env bash
# gpu-run.sh: run the GPU tests and measurements built by `make gpu-test-bin`
# on a machine with an NVIDIA GPU and its driver (libcuda.so.1). `make
# gpu-test-bin` copies it as run.sh next to the binaries; copy that folder to
# the GPU machine and run it there:
#
#   bin/gpu/run.sh [RESULTS_DIR]        # default: ./gpu-results
#
# It runs every *.test binary of its folder (the cuda-tagged tests), then
# TestReport (the figures of docs/benchmarks.md, set REPORT_GIB for the
# buffer size, default 4), then heat2d jobs with the cuda cutpoint binary:
# a small one on cuda and on cpu, whose digests must match, and a 1 GiB one
# on cuda with a rank SIGKILLed and without, whose digests must match. With
# BENCH=1 it ends with the harness's job family on cuda and cpu (about
# seven minutes on 16 cores), into RESULTS_DIR/bench.
# Logs land in RESULTS_DIR; the exit status is non-zero if anything failed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$PWD/gpu-results}
mkdir -p "$out"
status=0
note() { echo "[gpu-run] $*" | tee -a "$out/summary.txt"; }

command -v nvidia-smi >/dev/null && nvidia-smi -L | tee "$out/gpu.txt"
if ! ldconfig -p | grep -q 'libcuda.so.1 '; then
  note "no libcuda.so.1 on this machine: the binaries cannot start"
  exit 1
fi

for t in "$here"/*.test; do
  name=$(basename "$t" .test)
  note "running $name tests"
  if timeout -k 5 600 "$t" -test.v -test.count=1 -test.timeout=9m >"$out/$name.log" 2>&1; then
    note "$name: PASS"
  else
    note "$name: FAIL (see $name.log)"
    status=1
  fi
  grep -E '^(--- FAIL|FAIL|ok|PASS)' "$out/$name.log" | tail -n 20 >>"$out/summary.txt" || true
done

report=$here/kernels-cuda.test
if [[ -x $report ]]; then
  note "measuring (TestReport, ${REPORT_GIB:-4} GiB)"
  if "$report" -test.run '^TestReport$' -test.v -report -report.gib "${REPORT_GIB:-4}" >"$out/report.log" 2>&1; then
    grep -E '^\s+report_test.go:[0-9]+: ' "$out/report.log" | sed -E 's/^\s+report_test.go:[0-9]+: //' >"$out/report.md"
    note "report: $out/report.md"
  else
    note "report: FAIL (see report.log)"
    status=1
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
    note "$name: FAIL (see job-$name.log)"
    status=1
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
  small=(--ranks 2 --steps 3000 --size 512 --every-steps 200 --interval 0 --kill 1@1500)
  job small-cuda --device cuda "${small[@]}"
  job small-cpu --device cpu "${small[@]}"
  same small-cuda small-cpu
  big=(--device cuda --ranks 2 --steps 2000 --size 8190 --every-steps 250 --interval 0)
  job big-kill "${big[@]}" --kill 1@1200
  job big-plain "${big[@]}"
  same big-kill big-plain
  if [[ ${BENCH:-0} == 1 ]]; then
    note "harness job family (cuda, cpu)"
    if ! "$cp_bin" bench --families job --reps 2 --job-window 20s --job-intervals 10s --out "$out/bench" >"$out/bench.log" 2>&1; then
      note "bench: FAIL (see bench.log)"
      status=1
    fi
  fi
else
  note "no cutpoint-cuda next to run.sh: no jobs run"
  status=1
fi
exit $status
