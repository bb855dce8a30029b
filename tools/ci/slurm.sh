#!/usr/bin/env bash
# tools/ci/slurm.sh - the Slurm adapter's real-component tests, as CI runs them.
#
# Installs Slurm 22.05 from Debian's packages (root, apt-get), starts a single-node cluster
# on loopback with tools/slurm-lab/slurm-up.sh (munged, slurmctld, slurmd, slurmrestd with
# JWT), and runs the tests selected by FARM_TEST_SLURM=1 through BOTH transports:
#   1. tests/real_slurm.rs: hostile names/tags/paths round-trip through the real sbatch and
#      slurmrestd, every example request passes `sbatch --test-only`, the adversarial
#      example runs for real (CLI, REST, and CLI through the ssh runner) and prints exactly
#      what the local executor prints;
#   2. the conformance suite through the CLI transport;
#   3. the conformance suite through slurmrestd, on a freshly restarted cluster;
#   4. the `farm` command line itself through both transports (tools/ci/slurm-cli-smoke.sh):
#      render, submit --wait, status, list, log, stop, start.
# Stops the cluster on exit (only the daemons the lab script started). Exits non-zero if
# anything fails. Run from anywhere, as root:  bash tools/ci/slurm.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LAB="$ROOT/tools/slurm-lab"
export SLURM_LAB_CPUS="${SLURM_LAB_CPUS:-8}"   # many one-CPU probe jobs at once
export SLURM_LAB_FRESH=1
unset SLURM_JWT                                  # the tests mint their own tokens

log() { echo "[ci/slurm] $*" >&2; }

need_install=0
for b in munged slurmctld slurmd slurmrestd sbatch squeue scontrol scancel; do
  command -v "$b" >/dev/null || need_install=1
done
ls /usr/lib/*/slurm-wlm/auth_jwt.so >/dev/null 2>&1 || need_install=1   # slurm-wlm-jwt-plugin
if [ "$need_install" = 1 ]; then
  log "installing Slurm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends slurm-wlm munge slurmrestd slurm-wlm-jwt-plugin curl
fi

cleanup() { "$LAB/slurm-down.sh" || true; }
trap cleanup EXIT

cd "$ROOT"
log "building the tests"
cargo test -p farm-slurm --no-run

log "starting the cluster"
"$LAB/slurm-up.sh"
export FARM_TEST_SLURM=1
status=0
cargo test -p farm-slurm --test real_slurm || status=1
cargo test -p farm-slurm --test conformance real::cli -- --test-threads 4 || status=1

log "restarting the cluster with empty state for the REST suite"
"$LAB/slurm-down.sh" --keep-munge
"$LAB/slurm-up.sh"
cargo test -p farm-slurm --test conformance real::rest -- --test-threads 4 || status=1
bash "$ROOT/tools/ci/slurm-cli-smoke.sh" || status=1

if [ "$status" = 0 ]; then log "all real-Slurm tests passed"; else log "real-Slurm tests FAILED"; fi
exit "$status"
