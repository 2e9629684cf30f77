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
# buffer size, default 4), then, when the cuda cutpoint binary accepts
# `run --device`, a heat2d job on cuda and on cpu, whose digests must match.
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
  if "$t" -test.v -test.count=1 -test.timeout=20m >"$out/$name.log" 2>&1; then
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
if [[ -x $cp_bin ]] && "$cp_bin" run --help 2>/dev/null | grep -q -- '--device'; then
  for dev in cuda cpu; do
    store=$(mktemp -d)
    note "heat2d end to end on $dev"
    if "$cp_bin" run --device "$dev" --ranks 2 --steps 3000 --size 512 --every-steps 200 --interval 0 --kill 1@1500 --store "$store" --job gpu-e2e >"$out/e2e-$dev.log" 2>&1; then
      tail -n 1 "$out/e2e-$dev.log" >"$out/e2e-$dev.result"
    else
      note "e2e on $dev: FAIL (see e2e-$dev.log)"
      status=1
    fi
    rm -rf "$store"
  done
  if [[ -s $out/e2e-cuda.result && -s $out/e2e-cpu.result ]]; then
    if cmp -s "$out/e2e-cuda.result" "$out/e2e-cpu.result"; then
      note "e2e: cuda and cpu digests match: $(cat "$out/e2e-cuda.result")"
    else
      note "e2e: digests differ: cuda $(cat "$out/e2e-cuda.result"), cpu $(cat "$out/e2e-cpu.result")"
      status=1
    fi
  fi
else
  note "skipping the end-to-end job: cutpoint-cuda has no 'run --device' yet"
fi
exit $status
