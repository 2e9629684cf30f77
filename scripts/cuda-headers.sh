#!/usr/bin/env bash
# cuda-headers.sh: make the two files a `-tags cuda` build needs available
# without installing CUDA: cuda.h (to compile gorgonia.org/cu and our cgo) and
# the stub libcuda.so (to link; at run time the GPU node's own libcuda.so.1 is
# used). Both come from Debian's nvidia-cuda-dev package (non-free), which is
# downloaded once with `apt-get download` and extracted into .cache/cuda
# (git-ignored; override with CUTPOINT_CUDA_CACHE). Nothing is installed.
#
# Idempotent: a second run finds the files and returns at once. The .deb
# (~774 MB) is kept in the cache so a lost extraction costs no download; set
# CUTPOINT_CUDA_KEEP_DEB=0 to delete it after extraction.
#
# When apt knows no nvidia-cuda-dev and the machine has Debian 12's stock
# deb822 sources file, contrib and non-free are enabled in its
# `bookworm bookworm-updates` stanza (the security stanza is left alone), which
# needs root. cuda.h carries NVIDIA's licence notice: never commit it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CUTPOINT_CUDA_CACHE:-$root/.cache/cuda}
sources=/etc/apt/sources.list.d/debian.sources
pkg=nvidia-cuda-dev

log() { echo "[cuda-headers] $*" >&2; }
die() { log "error: $*"; exit 1; }

have_cache() {
  [[ -s $cache/include/cuda.h && -s $cache/lib/libcuda.so ]]
}

if have_cache; then
  log "present: $cache/include/cuda.h, $cache/lib/libcuda.so"
  exit 0
fi

mkdir -p "$cache"
# Two concurrent runs (parallel CI jobs on one machine) must not interleave.
exec 9>"$cache/.lock"
flock 9
if have_cache; then
  log "present (fetched by a concurrent run)"
  exit 0
fi

candidate() {
  apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}'
}

# stock_stanza: the bookworm stanza of the deb822 file still has only `main`.
stock_stanza() {
  [[ -f $sources ]] &&
    sed -n '/^Suites: bookworm bookworm-updates$/,/^$/p' "$sources" | grep -qx 'Components: main'
}

# enable_nonfree turns `Components: main` into the components that hold the
# CUDA packages (non-free) and their dependencies (contrib), in the bookworm
# stanza only: the range stops at the blank line ending the stanza, so the
# security stanza keeps `main`. Running it twice changes nothing.
enable_nonfree() {
  log "enabling contrib and non-free in $sources (bookworm stanza only)"
  sed -i '/^Suites: bookworm bookworm-updates$/,/^$/s/^Components: main$/Components: main contrib non-free non-free-firmware/' "$sources"
}

deb=$(ls "$cache"/deb/"$pkg"_*.deb 2>/dev/null | head -n1 || true)
if [[ -z $deb ]]; then
  command -v apt-get >/dev/null || die "apt-get not found: this script expects Debian 12; put cuda.h in $cache/include and libcuda.so in $cache/lib by hand"
  c=$(candidate)
  if [[ -z $c || $c == "(none)" ]]; then
    [[ $(id -u) -eq 0 ]] || die "apt has no candidate for $pkg; as root this script enables contrib and non-free and runs apt-get update (or do that by hand and run again)"
    if stock_stanza; then
      enable_nonfree
    fi
    log "apt-get update"
    apt-get update -qq
    c=$(candidate)
  fi
  [[ -n $c && $c != "(none)" ]] || die "apt has no candidate for $pkg (apt-cache policy $pkg); this needs Debian 12 (bookworm) with the contrib and non-free components enabled in the apt sources"
  log "downloading $pkg $c (about 774 MB, once)"
  rm -rf "$cache/deb.tmp"
  mkdir -p "$cache/deb.tmp"
  # apt-get download verifies the file against the signed Release index.
  # Downloading as root into a folder the _apt user cannot write needs the
  # sandbox off; as another user it is a no-op.
  (cd "$cache/deb.tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg")
  rm -rf "$cache/deb"
  mv "$cache/deb.tmp" "$cache/deb"
  deb=$(ls "$cache"/deb/"$pkg"_*.deb | head -n1)
fi

log "extracting cuda.h and the stub libcuda.so from $(basename "$deb")"
tmp=$(mktemp -d "$cache/extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --fsys-tarfile "$deb" |
  tar -x -C "$tmp" ./usr/include/cuda.h ./usr/lib/x86_64-linux-gnu/stubs/libcuda.so
grep -q '#define CUDA_VERSION' "$tmp/usr/include/cuda.h" || die "extracted cuda.h has no CUDA_VERSION: $deb looks damaged; delete $cache and run again"
mkdir -p "$cache/include" "$cache/lib"
# Library first: have_cache tests both, and a half-done run must not pass.
mv -f "$tmp/usr/lib/x86_64-linux-gnu/stubs/libcuda.so" "$cache/lib/libcuda.so"
mv -f "$tmp/usr/include/cuda.h" "$cache/include/cuda.h"
if [[ ${CUTPOINT_CUDA_KEEP_DEB:-1} == 0 ]]; then
  rm -rf "$cache/deb"
fi
log "ready: $(grep -m1 '#define CUDA_VERSION' "$cache/include/cuda.h"); source scripts/cuda-env.sh to build with -tags cuda"
