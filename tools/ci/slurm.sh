#!/usr/bin/env bash
# tools/ci/slurm.sh - the Slurm adapter's real-component tests, as CI runs them.
#
# Installs Slurm 22.05 from Debian's packages (root, apt-get), starts a single-node cluster
# on loopback with tools/slurm-lab/slurm-up.sh (munged, slurmctld, slurmd, slurmrestd with
# JWT), and runs the real-Slurm tests through BOTH transports. They are #[ignore]d (a plain
# `cargo test` reports them as not run), so they run here with FARM_TEST_SLURM=1 and
# `-- --ignored`; a step that runs no test at all fails:
#   1. tests/real_slurm.rs: hostile names/tags/paths round-trip through the real sbatch and
#      slurmrestd, every example request passes `sbatch --test-only`, the adversarial
#      example runs for real (CLI, REST, and CLI through the ssh runner) and prints exactly
#      what the local executor prints; check (sbatch --test-only) and retry_failed
#      (scontrol requeue of a failed and a cancelled array element only);
#   2. the conformance suite through the CLI transport;
#   3. the conformance suite through slurmrestd, on the same cluster: it still holds the
#      first run's finished jobs, and a run must not find another run's jobs (job names
#      carry the run id);
#   4. the `farm` command line itself through both transports (tools/ci/slurm-cli-smoke.sh):
#      render, submit --wait, status, list, log, stop, start, and `submit --wait` riding out
#      a slurmctld restart.
# Stops the cluster on exit (only the daemons the lab script started). Exits non-zero if
# anything fails. Run from anywhere, as root:  bash tools/ci/slurm.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LAB="$ROOT/tools/slurm-lab"
export SLURM_LAB_CPUS="${SLURM_LAB_CPUS:-8}"   # many one-CPU probe jobs at once
export SLURM_LAB_FRESH=1
unset SLURM_JWT                                  # the tests mint their own tokens

log() { echo "[ci/slurm] $*" >&2; }

# cargo_test ARGS... : `cargo test ARGS`, failing also when it ran no test (a filter or an
# #[ignore] change that selects nothing must not pass silently).
cargo_test() {
  local out rc=0
  out="$(mktemp)"
  cargo test "$@" 2>&1 | tee "$out" || rc=$?
  if [ "$rc" = 0 ] && ! grep -Eq '^test result: ok\. [1-9][0-9]* passed' "$out"; then
    log "no test ran: cargo test $*"
    rc=1
  fi
  rm -f "$out"
  return "$rc"
}

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
cargo_test -p farm-slurm --test real_slurm -- --ignored || status=1
cargo_test -p farm-slurm --test conformance real::cli -- --ignored --test-threads 4 || status=1
cargo_test -p farm-slurm --test conformance real::rest -- --ignored --test-threads 4 || status=1
FARM_SMOKE_SLURM_LAB="$LAB" bash "$ROOT/tools/ci/slurm-cli-smoke.sh" || status=1

if [ "$status" = 0 ]; then log "all real-Slurm tests passed"; else log "real-Slurm tests FAILED"; fi
exit "$status"
