#!/usr/bin/env bash
# tools/ci/slurm-cli-smoke.sh - the `farm` command line itself against a running real Slurm,
# through BOTH transports: render, submit (and submit --wait), status, list, log, stop,
# start. Run by tools/ci/slurm.sh while its cluster is up; needs `scontrol token` (JWT).
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
    settings: {transport: rest, user_name: root, log_directory: $work, state_directory: $work/state-rest}
YAML
export FARM_CONFIG="$work/farms.yaml"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
fail() { echo "[ci/slurm-cli] FAILED ($farm): $*" >&2; exit 1; }
wait_state() {  # wait_state ID STATE
  for _ in $(seq 300); do
    [ "$("$FARM_BIN" -o json --farm "$farm" status "$1" | json 'd["state"]')" = "$2" ] && return 0
    sleep 0.2
  done
  fail "job $1 never reached $2"
}

for farm in slurm-cli slurm-rest; do
  echo "[ci/slurm-cli] $farm"
  f=("$FARM_BIN" --farm "$farm")
  token="ok-$farm-$RANDOM$RANDOM"
  cat >"$work/ok.yaml" <<YAML
name: smoke $farm ok
commands: [[/bin/sh, -c, 'echo "\$1 frame \$FARM_FRAME"', sh, $token]]
frames: 1-3
working_directory: $work
YAML
  cat >"$work/long.yaml" <<YAML
name: smoke $farm long
commands: [[/bin/sh, -c, 'echo started; sleep 300']]
working_directory: $work
YAML

  "${f[@]}" render "$work/ok.yaml" | grep -q "$token" || fail "render does not carry the command"
  "${f[@]}" submit --wait --timeout 2m "$work/ok.yaml" >"$work/wait.out" || fail "submit --wait: $(cat "$work/wait.out")"
  grep -q "Completed" "$work/wait.out" || fail "submit --wait did not report Completed"
  id="$("${f[@]}" -o json list --name "smoke $farm ok" | json 'd[0]["id"]')"
  [ "$("${f[@]}" -o json status "$id" | json 'd["state"]')" = Completed ] || fail "status"
  for n in 1 2 3; do
    "${f[@]}" log "$id" | grep -q "$token frame $n" || fail "log lacks frame $n"
  done
  [ -s "$("${f[@]}" log --path "$id")" ] || fail "log --path names no file"

  long="$("${f[@]}" submit "$work/long.yaml")"
  wait_state "$long" Running
  "${f[@]}" stop "$long" >/dev/null
  wait_state "$long" Cancelled
  "${f[@]}" -o json list --state Cancelled | json '[j["id"] for j in d]' | grep -q "'$long'" || fail "list --state Cancelled"
  again="$("${f[@]}" -o json start "$long" | json 'd["started"][0]["now"]')"
  attempt="$("${f[@]}" -o json status "$again" | json 'd["attempt"]')"
  [ "$attempt" -ge 2 ] || fail "start did not make a new attempt (attempt $attempt)"
  "${f[@]}" stop "$again" >/dev/null
  wait_state "$again" Cancelled
  echo "[ci/slurm-cli] $farm: render, submit --wait, status, list, log, stop, start passed"
done
