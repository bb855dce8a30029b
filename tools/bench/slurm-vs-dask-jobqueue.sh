#!/usr/bin/env bash
# tools/bench/slurm-vs-dask-jobqueue.sh - sbatch scripts per second: farm-slurm's renderer
# against dask-jobqueue's SLURMJob, on comparable jobs, in the same run.
#
# Creates a Python venv (FARM_BENCH_VENV, default $TMPDIR/farm-bench-dask-venv), installs
# dask-jobqueue into it with pip, builds adapters/slurm/examples/render_rate.rs in release
# mode, then alternates the two sides (FARM_BENCH_ROUNDS rounds of FARM_BENCH_SECONDS each,
# default 2 x 3 s) and keeps each side's best round, so both see the same machine load.
#
# The comparable job: one worker command of 15 words, 8 CPUs, 30G, 2 h, partition, account,
# job name. dask-jobqueue is timed two ways:
#   - construct + job_script(): SLURMJob(...) then job_script(), i.e. from the job's
#     description to the script text, which is what farm-slurm's render does (validation,
#     directives, quoting, the task program);
#   - job_script() alone on one pre-built SLURMJob (dask computes the header in the
#     constructor, so this is a string join of cached parts).
# farm-slurm also reports its typical 10-command, 100-frame render.
# Prints the rates and the ratios; exits non-zero only if something fails to run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FARM_BENCH_VENV:-${TMPDIR:-/tmp}/farm-bench-dask-venv}"
SECS="${FARM_BENCH_SECONDS:-3}"
ROUNDS="${FARM_BENCH_ROUNDS:-2}"
PY="${PYTHON:-python3}"

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -c 'import dask_jobqueue' 2>/dev/null || "$VENV/bin/pip" install -q dask-jobqueue
(cd "$ROOT" && cargo build -q --release -p farm-slurm --example render_rate)
RENDER="$ROOT/target/release/examples/render_rate"

dask_rate() {  # dask_rate construct|script SECONDS
  "$VENV/bin/python" - "$1" "$2" <<'PY'
import sys, time
from dask_jobqueue.slurm import SLURMJob
mode, secs = sys.argv[1], float(sys.argv[2])
kw = dict(scheduler="tcp://10.0.0.1:8786", name="dummy-name", cores=8, memory="32GB", processes=4,
          queue="render", account="vfx", walltime="02:00:00", python="/usr/bin/python3")
job = SLURMJob(**kw)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < secs:
    if mode == "construct":
        for _ in range(100):
            SLURMJob(**kw).job_script()
    else:
        for _ in range(100):
            job.job_script()
    n += 100
print(f"{n / (time.perf_counter() - start):.0f}")
PY
}
ours_rate() { "$RENDER" "$1" "$2" 2>/dev/null | awk '/renders_per_second/ {print $2}'; }
best() { printf '%s\n' "$@" | sort -n | tail -1; }

d_construct=(); d_script=(); o_dask=(); o_typical=()
for _ in $(seq "$ROUNDS"); do
  d_construct+=("$(dask_rate construct "$SECS")")
  o_dask+=("$(ours_rate dask "$SECS")")
  d_script+=("$(dask_rate script "$SECS")")
  o_typical+=("$(ours_rate typical "$SECS")")
done
DC=$(best "${d_construct[@]}"); DS=$(best "${d_script[@]}")
OD=$(best "${o_dask[@]}"); OT=$(best "${o_typical[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
echo "dask-jobqueue $("$VENV/bin/python" -c 'import dask_jobqueue; print(dask_jobqueue.__version__)') on $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "dask-jobqueue SLURMJob(...).job_script():   $DC scripts/s"
echo "dask-jobqueue job_script() on a built job:  $DS scripts/s"
echo "farm-slurm render, comparable job:          $OD scripts/s"
echo "farm-slurm render, 10 commands x 100 frames: $OT scripts/s"
echo "ratio farm-slurm / dask (construct + script): $(ratio "$OD" "$DC")x"
echo "ratio farm-slurm / dask (job_script alone):   $(ratio "$OD" "$DS")x"
