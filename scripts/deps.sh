#!/usr/bin/env bash
# deps.sh: install what `make test` needs on a clean Debian 12 machine.
# Idempotent; a second run only checks.
set -euo pipefail
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
log() { echo "[deps] $*"; }

if ! command -v staticcheck >/dev/null; then
  log "installing staticcheck"
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
go mod download
