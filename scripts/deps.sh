#!/usr/bin/env bash
# deps.sh: install what `make test` needs on a clean Debian 12 machine (CI
# runs as root on a fresh checkout). Idempotent: a second run only checks.
#   - Go modules (from the module proxy)
#   - staticcheck (go install, pinned)
#   - cuda.h and the stub libcuda.so for the `-tags cuda` checks, extracted
#     from Debian's nvidia-cuda-dev into .cache/cuda (nothing installed)
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
scripts/cuda-headers.sh
