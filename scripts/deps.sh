#!/usr/bin/env bash
# deps.sh: install what `make test` needs on a clean Debian 12 machine (CI
# runs as root on a fresh checkout). Idempotent: a second run only checks.
#   - Go modules (from the module proxy)
#   - staticcheck (go install, pinned)
#   - cuda.h and the stub libcuda.so for the `-tags cuda` checks, extracted
#     from Debian's nvidia-cuda-dev into .cache/cuda (nothing installed)
#   - the zstd command-line tool, the baseline `cutpoint bench` compares
#     against (its quick plan runs in `make test`; without zstd that row is
#     skipped)
#   - the compilers and Python packages the jobs of other languages need
#     (go test ./cmd/libcutpoint: C, C++, Fortran and Python jobs on
#     libcutpoint): gcc/g++, gfortran, python3 with numpy, pytest,
#     setuptools and pip, from Debian (no PyPI)
#   - Open MPI (openmpi-bin, libopenmpi-dev: mpicc, mpirun) for the MPI
#     mode's test (TestMPIHeat2DWholeWorldRelaunch). Open MPI rather than
#     MPICH: as root it runs with --allow-run-as-root, and oversubscribed
#     (--oversubscribe, 4 ranks on 2 cores) its ranks yield while they wait,
#     where MPICH's spin in MPI_Barrier and starve the ranks' heartbeats.
# The Slurm tests install their own daemons (slurm/ci/start-slurm.sh).
set -euo pipefail
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
cd "$(dirname "$0")/.."
log() { echo "[deps] $*"; }

go mod download
if ! command -v staticcheck >/dev/null; then
  log "installing staticcheck"
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
if ! command -v zstd >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing zstd"
  (apt-get install -y --no-install-recommends zstd >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends zstd >/dev/null; }) ||
    log "could not install zstd; the zstd CLI baseline will be skipped"
fi
# Debian packages for libcutpoint's tests and the multi-host bed (ip); only the missing ones, quietly.
apt_pkgs=(gcc g++ gfortran python3 python3-numpy python3-pytest python3-setuptools python3-pip openmpi-bin libopenmpi-dev iproute2)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    (apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }) ||
      log "could not install ${missing[*]}; the jobs that need them are skipped"
  else
    log "missing ${missing[*]} (not root): the jobs that need them are skipped"
  fi
fi
scripts/cuda-headers.sh
