#!/usr/bin/env bash
# slurm/site-check.sh: `make test`'s Slurm parts leave a host's own Slurm
# and munge alone (the "site" case of slurm/test.sh; as root).
#
# A site install is stood in for, unless one already runs here: a munged on
# the packages' default socket (/run/munge/munge.socket.2, key
# /etc/munge/munge.key, pid /run/munge/munged.pid) and a one-node Slurm on
# Slurm's default ports 6817/6818 with a job running in it. Then what
# `make test` does to Slurm is done while it runs: scripts/deps.sh, and the
# private test cluster's whole cycle (stop-slurm.sh --purge, start-slurm.sh,
# a job, stop-slurm.sh). Afterwards the site's daemons must be the same
# processes, its job still running, its slurm.conf, /etc/slurm and
# /etc/munge byte for byte the same, and its munge still answer. The stand-in
# is stopped at the end; a real site install is only looked at.
#
# Env: SITE_CHECK_DIR (the stand-in's state, default a fresh /var/tmp dir),
#      SLURM_CI_DIR (the private cluster's, as start-slurm.sh).
set -euo pipefail
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "slurm/site-check.sh must run as root" >&2; exit 1; }
S=${SITE_CHECK_DIR:-$(mktemp -d /var/tmp/cutpoint-site.XXXXXX)}
# The munge user must reach the stand-in's munged files under it.
mkdir -p "$S" && chmod 755 "$S"
SITE_SOCK=/run/munge/munge.socket.2
say() { echo "[site-check] $*"; }
die() { echo "[site-check] FAIL: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && [ "$(cat /proc/"$(cat "$1")"/comm 2>/dev/null)" = "$2" ]; }

# The stand-in, or the real site found running.
made_munged=0 made_rundir=0 made_slurm=0 site_conf=""
cleanup() {
  local rc=$?
  if [ "$made_slurm" = 1 ]; then SLURM_CI_DIR=$S/slurm bash "$ROOT/slurm/ci/stop-slurm.sh" >/dev/null 2>&1 || true; fi
  if [ "$made_munged" = 1 ] && alive /run/munge/munged.pid munged; then kill "$(cat /run/munge/munged.pid)" || true; sleep 1; fi
  if [ "$made_rundir" = 1 ]; then rm -rf /run/munge; fi
  [ -n "${SITE_CHECK_DIR:-}" ] || rm -rf "$S"
  exit "$rc"
}
trap cleanup EXIT

# sums: what of the host's own config must not change.
sums() { find /etc/slurm /etc/munge -type f -exec sha256sum {} + 2>/dev/null | sort; }
before_etc=$(sums)

if pgrep -x munged >/dev/null && [ -S "$SITE_SOCK" ]; then
  say "a munged answers on $SITE_SOCK: using it as the site's"
else
  [ -d /run/munge ] || { install -d -o munge -g munge -m 755 /run/munge; made_rundir=1; }
  [ -s /etc/munge/munge.key ] || die "no /etc/munge/munge.key (the munge package's key) to stand in for a site munged"
  runuser -u munge -- /usr/sbin/munged --force
  made_munged=1
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  say "stand-in site munged started on $SITE_SOCK (pid $(cat /run/munge/munged.pid))"
fi
munge -n | unmunge >/dev/null || die "the site munged does not answer"
# The site's daemons by pid: its munged (the default pid file), and its
# slurmctld and slurmd (the stand-in's pid files, or those in this network
# namespace for a real site). Other Slurms (in other namespaces, private
# sockets) are no part of the check.
site_munged=$(cat /run/munge/munged.pid 2>/dev/null || pgrep -x munged | head -n 1)

real_ctld=""
for p in $(pgrep -x slurmctld || true); do
  [ "$(ip netns identify "$p" 2>/dev/null)" = "" ] && real_ctld+="$p "
done
if [ -n "$real_ctld" ] && [ -s /etc/slurm/slurm.conf ]; then
  say "a slurmctld runs here (pid $real_ctld) with /etc/slurm/slurm.conf: using it as the site's"
  site_conf=/etc/slurm/slurm.conf
  export SLURM_CONF=$site_conf
else
  SLURM_CI_DIR=$S/slurm SLURM_CI_PORT=6817 bash "$ROOT/slurm/ci/start-slurm.sh" >"$S/start.log" 2>&1 ||
    { cat "$S/start.log" >&2; die "could not start the stand-in site Slurm on 6817/6818"; }
  made_slurm=1
  site_conf=$S/slurm/etc/slurm.conf
  export SLURM_CONF=$site_conf
  say "stand-in site Slurm on ports 6817/6818 ($site_conf)"
fi
site_jobs_before=$(squeue -h -o '%i %T' | sort)
site_job=$(sbatch --parsable -n 1 -o /dev/null --wrap 'sleep 600')
for _ in $(seq 60); do [ "$(squeue -h -j "$site_job" -o %T)" = RUNNING ] && break; sleep 1; done
[ "$(squeue -h -j "$site_job" -o %T)" = RUNNING ] || die "the site job $site_job does not run"
if [ "$made_slurm" = 1 ]; then
  site_daemons="$site_munged $(cat "$S"/slurm/run/slurmctld.pid "$S"/slurm/run/slurmd.pid | tr '\n' ' ')"
else
  site_daemons="$site_munged $real_ctld"
  for p in $(pgrep -x slurmd || true); do [ "$(ip netns identify "$p" 2>/dev/null)" = "" ] && site_daemons+=" $p"; done
fi
conf_sum=$(sha256sum "$site_conf")
say "site: daemons $site_daemons, job $site_job running, conf $site_conf"

# What make test does to Slurm and munge, with the site running.
unset SLURM_CONF
say "scripts/deps.sh"
"$ROOT/scripts/deps.sh" >"$S/deps.log" 2>&1 || { tail -n 20 "$S/deps.log" >&2; die "scripts/deps.sh failed"; }
say "the private test cluster: stop --purge, start, a job, stop"
bash "$ROOT/slurm/ci/stop-slurm.sh" --purge >/dev/null
bash "$ROOT/slurm/ci/start-slurm.sh"
priv_conf=${SLURM_CI_DIR:-/var/tmp/cutpoint-slurm}/etc/slurm.conf
out=$(SLURM_CONF=$priv_conf srun -n 1 -t 1 hostname) || die "a job on the private cluster failed"
say "private cluster ran a job on $out"
bash "$ROOT/slurm/ci/stop-slurm.sh" >/dev/null

# Nothing of the site changed.
export SLURM_CONF=$site_conf
for p in $site_daemons; do
  case "$(cat /proc/"$p"/comm 2>/dev/null)" in slurmctld | slurmd | munged) ;; *) die "site daemon pid $p is gone (site daemons were $site_daemons)" ;; esac
done
[ "$(squeue -h -j "$site_job" -o %T 2>/dev/null)" = RUNNING ] || die "the site job $site_job is no longer running ($(squeue -h -j "$site_job" -o %T 2>&1))"
[ "$(sha256sum "$site_conf")" = "$conf_sum" ] || die "$site_conf changed"
[ "$(sums)" = "$before_etc" ] || die "/etc/slurm or /etc/munge changed"
munge -n | unmunge >/dev/null || die "the site munged no longer answers on $SITE_SOCK"
now_jobs=$(squeue -h -o '%i %T' | grep -v "^$site_job " | sort || true)
[ "$now_jobs" = "$site_jobs_before" ] || die "the site's other jobs changed: before '$site_jobs_before', now '$now_jobs'"
scancel "$site_job" 2>/dev/null || true
say "passed: site daemons ($site_daemons) the same processes, job $site_job still running, $site_conf, /etc/slurm and /etc/munge unchanged, munge answers"
