#!/usr/bin/env bash
# bed.sh: a multi-host test bed on one machine, made of Linux network
# namespaces. Nothing touches the root namespace's network:
#
#   cpbed-sw   the "switch": holds the bridge cpbed-br
#   cpbed-h1   "host" 1, eth0 = 10.231.0.11/24, veth peer cpbed-h1 on the bridge
#   cpbed-h2   "host" 2, eth0 = 10.231.0.12/24
#   cpbed-h3   "host" 3, eth0 = 10.231.0.13/24
#
# The 10.231.0.0/24 range exists only inside these namespaces (no route, no
# link to the root namespace), so no bed traffic can leave them. The bed
# directory ($CPBED_DIR, default /tmp/cpbed) plays the file systems:
# shared/ the parallel file system every host sees, node/hN/ each host's
# node-local disk.
#
#   bed.sh up            create the bed (idempotent)
#   bed.sh down          remove every namespace and the bed directory
#   bed.sh exec HOST CMD run CMD in host HOST (h1, h2, h3)
#   bed.sh addr HOST     print HOST's address
#   bed.sh status        list what exists
#
# Needs root and iproute2 (`ip`). CPBED_HOSTS sets the number of hosts
# (default 3, at most 9).
set -euo pipefail

dir=${CPBED_DIR:-/tmp/cpbed}
hosts=${CPBED_HOSTS:-3}
sw=cpbed-sw
br=cpbed-br
net=10.231.0

need() {
  if [ "$(id -u)" != 0 ]; then
    echo "bed.sh: needs root (network namespaces)" >&2
    exit 77
  fi
  if ! command -v ip >/dev/null; then
    echo "bed.sh: needs iproute2 (ip)" >&2
    exit 77
  fi
  if ! [[ $hosts =~ ^[1-9]$ ]]; then
    echo "bed.sh: CPBED_HOSTS=$hosts: want 1..9" >&2
    exit 2
  fi
}

has_ns() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

addr() { echo "$net.1$1"; }

up() {
  need
  has_ns "$sw" || ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link show "$br" >/dev/null 2>&1 || ip -n "$sw" link add "$br" type bridge
  ip -n "$sw" link set "$br" up
  mkdir -p "$dir/shared"
  for i in $(seq 1 "$hosts"); do
    h=cpbed-h$i
    has_ns "$h" || ip netns add "$h"
    ip -n "$h" link set lo up
    # The veth pair is created inside the switch namespace with its peer
    # put straight into the host namespace: neither end is ever in the
    # root namespace.
    if ! ip -n "$sw" link show "$h" >/dev/null 2>&1; then
      ip -n "$h" link del eth0 >/dev/null 2>&1 || true
      ip -n "$sw" link add "$h" type veth peer name eth0 netns "$h"
    fi
    ip -n "$sw" link set "$h" master "$br" up
    ip -n "$h" addr replace "$(addr "$i")/24" dev eth0
    ip -n "$h" link set eth0 up
    mkdir -p "$dir/node/h$i"
  done
  echo "bed up: $hosts hosts ($(for i in $(seq 1 "$hosts"); do printf 'h%s=%s ' "$i" "$(addr "$i")"; done)), dir $dir"
}

down() {
  need
  # cpbed-ctl: the Slurm controller's host of slurm.sh, when it runs.
  for h in $(seq -f 'cpbed-h%g' 1 9) cpbed-ctl; do
    if has_ns "$h"; then
      # Processes still running in a host end with it: kill them first
      # (only those inside the bed's namespaces).
      for pid in $(ip netns pids "$h" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$h"
    fi
  done
  has_ns "$sw" && ip netns del "$sw"
  case "$dir" in
    /|"") ;;
    *) rm -rf "$dir" ;;
  esac
  echo "bed down"
}

status() {
  ip netns list | grep '^cpbed-' || echo "no bed namespaces"
  [ -d "$dir" ] && echo "bed dir $dir" || true
}

cmd=${1:-}
shift || true
case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  addr) addr "${1#h}" ;;
  cut | heal)
    # cut HOST / heal HOST: take the host's port on the bridge down (a
    # network partition: the host's processes run on, unreachable) or up.
    need
    h=${1:?bed.sh $cmd HOST}
    ip -n "$sw" link set "cpbed-${h}" "$([ "$cmd" = cut ] && echo down || echo up)"
    ;;
  exec)
    need
    h=${1:?bed.sh exec HOST CMD...}
    shift
    exec ip netns exec "cpbed-$h" "$@"
    ;;
  *)
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
