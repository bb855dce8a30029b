#!/usr/bin/env bash
# tools/ci/slurm-cli-smoke.sh - the `farm` command line itself against a running real Slurm,
# through BOTH transports: render, validate --farm (sbatch --test-only: a 1,000-CPU request
# refused in Slurm's words, a valid one shown with its expected start; the REST farm asks
# the CLI through check_with_cli), submit --check, submit (and submit --wait), status,
# list, log, stop, start. Run by tools/ci/slurm.sh while its cluster is up; needs `scontrol token` (JWT).
# With FARM_SMOKE_SLURM_LAB set to the tools/slurm-lab directory (tools/ci/slurm.sh sets
# it), also restarts slurmctld (by the PID the lab recorded, state kept) under a running
# `farm submit --wait`, which must ride out the outage and report the job Completed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
cargo build -q -p farm
FARM_BIN="$target_dir/debug/farm"

work="$(mktemp -d /tmp/farm-cli-smoke.XXXXXX)"
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
eval "export $(scontrol token lifespan=3600)"   # SLURM_JWT for the REST transport
cat >"$work/farms.yaml" <<YAML
farms:
  slurm-cli:
    adapter: slurm
    settings: {transport: cli, log_directory: $work, state_directory: $work/state-cli}
  slurm-rest:
    adapter: slurm
    settings: {transport: rest, user_name: root, log_directory: $work, state_directory: $work/state-rest, check_with_cli: true}
YAML
export FARM_CONFIG="$work/farms.yaml"
# In every job name: a re-run on a cluster that still holds this run's jobs must not find them.
run="r$RANDOM$RANDOM"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
fail() { echo "[ci/slurm-cli] FAILED ($farm): $*" >&2; exit 1; }
lab_run="${SLURM_LAB_DIR:-/tmp/farm-slurm-lab/run}"
restart_slurmctld() {  # stops the lab's slurmctld, waits until Slurm says so, starts it again
  local pid
  pid="$(cat "$lab_run/pids/slurmctld.pid")"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmctld ] || fail "no slurmctld of the lab at pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 100); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
  [ -e "/proc/$pid" ] && fail "slurmctld (pid $pid) did not stop"
  [[ "$(scontrol ping 2>&1)" == *DOWN* ]] || fail "scontrol ping does not say DOWN"
  # Slurm's clients (squeue, slurmrestd) retry a slurmctld they cannot reach for about 9 s
  # before they give up: stay down long enough for one whole poll of the waiting client
  # (every 3 s at most) to start and fail during the outage.
  sleep 15
  # Without our SLURM_JWT: slurmctld would take it as a change of AuthType and refuse to start.
  env -u SLURM_JWT SLURM_LAB_FRESH=0 "$FARM_SMOKE_SLURM_LAB/slurm-up.sh" 2>"$work/slurm-up.err" ||
    fail "slurmctld did not come back: $(cat "$work/slurm-up.err")"
}
wait_state() {  # wait_state ID STATE
  for _ in $(seq 300); do
    [ "$("$FARM_BIN" -o json --farm "$farm" status "$1" | json 'd["jobs"][0]["state"]')" = "$2" ] && return 0
    sleep 0.2
  done
  fail "job $1 never reached $2"
}

for farm in slurm-cli slurm-rest; do
  echo "[ci/slurm-cli] $farm"
  f=("$FARM_BIN" --farm "$farm")
  token="ok-$farm-$RANDOM$RANDOM"
  cat >"$work/ok.yaml" <<YAML
name: smoke $run $farm ok
commands: [[/bin/sh, -c, 'echo "\$1 frame \$FARM_FRAME"', sh, $token]]
frames: 1-3
working_directory: $work
YAML
  cat >"$work/long.yaml" <<YAML
name: smoke $run $farm long
commands: [[/bin/sh, -c, 'echo started; sleep 300']]
working_directory: $work
YAML

  cat >"$work/big.yaml" <<YAML
name: smoke $run $farm big
commands: [[/bin/true]]
resources: {cpus: 1000}
YAML
  # Ask the farm first: Slurm refuses 1,000 CPUs in its own words (exit 4) and shows when
  # and where a valid request would start; nothing is submitted either way.
  rc=0; "${f[@]}" validate "$work/big.yaml" >"$work/validate.out" || rc=$?
  [ "$rc" = 4 ] || fail "validate --farm of 1000 CPUs exited $rc: $(cat "$work/validate.out")"
  grep -q "Requested node configuration is not available" "$work/validate.out" ||
    fail "validate --farm did not give Slurm's words: $(cat "$work/validate.out")"
  "${f[@]}" validate "$work/ok.yaml" >"$work/validate.out" || fail "validate --farm of a valid request"
  grep -q "estimated start:" "$work/validate.out" || fail "no expected start: $(cat "$work/validate.out")"
  [ "$("${f[@]}" -o json validate "$work/ok.yaml" | json 'd[0]["farm"]["accepted"]')" = True ] ||
    fail "validate -o json does not say accepted"
  rc=0; "${f[@]}" submit --check "$work/big.yaml" >"$work/submit.out" 2>&1 || rc=$?
  [ "$rc" = 4 ] || fail "submit --check of 1000 CPUs exited $rc: $(cat "$work/submit.out")"
  [ -z "$(squeue --noheader --name "smoke $run $farm big")" ] || fail "submit --check submitted"
  "${f[@]}" render "$work/ok.yaml" | grep -q "$token" || fail "render does not carry the command"
  "${f[@]}" submit --wait --timeout 2m "$work/ok.yaml" >"$work/wait.out" || fail "submit --wait: $(cat "$work/wait.out")"
  grep -q "Completed" "$work/wait.out" || fail "submit --wait did not report Completed"
  id="$("${f[@]}" -o json list --name "smoke $run $farm ok" | json 'd["jobs"][0]["id"]')"
  [ "$("${f[@]}" -o json status "$id" | json 'd["jobs"][0]["state"]')" = Completed ] || fail "status"
  for n in 1 2 3; do
    "${f[@]}" log "$id" | grep -q "$token frame $n" || fail "log lacks frame $n"
  done
  [ -s "$("${f[@]}" log --path "$id")" ] || fail "log --path names no file"

  long="$("${f[@]}" submit --quiet "$work/long.yaml")"
  wait_state "$long" Running
  "${f[@]}" stop "$long" >/dev/null
  wait_state "$long" Cancelled
  "${f[@]}" -o json list --state Cancelled | json '[j["id"] for j in d["jobs"]]' | grep -q "'$long'" || fail "list --state Cancelled"
  again="$("${f[@]}" -o json start "$long" | json 'd["results"][0]["now"]')"
  attempt="$("${f[@]}" -o json status "$again" | json 'd["jobs"][0]["attempt"]')"
  [ "$attempt" -ge 2 ] || fail "start did not make a new attempt (attempt $attempt)"
  "${f[@]}" stop "$again" >/dev/null
  wait_state "$again" Cancelled
  echo "[ci/slurm-cli] $farm: render, submit --wait, status, list, log, stop, start passed"

  if [ -n "${FARM_SMOKE_SLURM_LAB:-}" ]; then
    cat >"$work/restart.yaml" <<YAML
name: smoke $run $farm outlives slurmctld
commands: [[/bin/sh, -c, 'sleep 6; echo survived']]
working_directory: $work
YAML
    "${f[@]}" submit --wait --timeout 3m "$work/restart.yaml" >"$work/restart.out" 2>&1 &
    waiter=$!
    for _ in $(seq 300); do
      rid="$("${f[@]}" -o json list --name "smoke $run $farm outlives slurmctld" | json 'd["jobs"][0]["id"] if d["jobs"] else ""')"
      [ -n "$rid" ] && break
      sleep 0.2
    done
    [ -n "$rid" ] || fail "the restart job never appeared"
    wait_state "$rid" Running
    restart_slurmctld
    wait "$waiter" || fail "submit --wait did not survive a slurmctld restart: $(cat "$work/restart.out")"
    grep -q "Completed" "$work/restart.out" || fail "after the restart: $(cat "$work/restart.out")"
    "${f[@]}" log "$rid" | grep -q survived || fail "the restart job's log lacks its output"
    echo "[ci/slurm-cli] $farm: submit --wait rode out a slurmctld restart"
  fi
done
