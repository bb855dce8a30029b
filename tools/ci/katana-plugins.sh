#!/usr/bin/env bash
# Third-party Katana farm plug-ins (issue 18): the plug-in host and its examples.
#
# What it installs: pytest (pinned, from PyPI) into a virtualenv. Nothing else: the host,
# the example plug-in and its broken variants are standard-library Python.
#
# What it runs:
#   tools/katana/tests/test_host.py   the host (tools/katana/host/farm_katana_host.py) over its
#                                     protocol: the example plug-in's round trips, each broken
#                                     variant's flaw caught where the host is meant to catch it,
#                                     and small plug-ins written in the test
#   farm conformance                  (`adapter: katana-plugin`) on FarmBridge.py driving a
#                                     real local queue (`farm queue serve`, two agents) and on
#                                     the example (exit 0), and on each broken variant (exit
#                                     12); the queue and any runner left behind are killed
#
# Usage: tools/ci/katana-plugins.sh
#   FARM_CI_VENV   virtualenv to use (default: $TMPDIR/farm-ci-katana-plugins-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTEST_VERSION=9.2.0
VENV="${FARM_CI_VENV:-${TMPDIR:-/tmp}/farm-ci-katana-plugins-venv}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "pytest==$PYTEST_VERSION"

echo "== Katana plug-in host tests"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tools/katana/tests/test_host.py

# ---------------------------------------------------------------------------------------
# `farm conformance` on Katana farm plug-ins (`adapter: katana-plugin`): FarmBridge.py
# driving a real local queue and the example plug-in must pass (exit 0); every broken
# variant must be rejected (exit 12). The broken runs go two at a time: their jobs mostly
# sleep, and a rejected check now fails within seconds (the harness stops waiting after
# repeated non-retryable errors).
# ---------------------------------------------------------------------------------------
conformance_runs() {
  cargo build --locked -p farm
  local target_dir
  target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  farm="$target_dir/debug/farm"
  work="$(mktemp -d "${TMPDIR:-/tmp}/farm-ci-katana-plugins.XXXXXX")"
  trap cleanup EXIT
  # The embedded plug-in host is written under the cache directory: start from none.
  export XDG_CACHE_HOME="$work/cache"
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  mkdir -p "$work/queue/staging"
  # FarmBridge.py's own farms file: the queue only (it builds every farm it lists).
  {
    echo "farms:"
    echo "  studio:"
    echo "    adapter: local"
    echo "    staging_root: '$work/queue/staging'"
    echo "    installation: {katana_root: /opt/Katana7.0v1}"
    echo "    settings: {url: 'http://127.0.0.1:$port', data_root: '$work/queue/data', autostart: false}"
  } > "$work/studio.yaml"
  {
    cat "$work/studio.yaml"
    echo "  katana-bridge:"
    echo "    adapter: katana-plugin"
    echo "    settings:"
    echo "      plugins: '$PWD/tools/katana/Plugins'"
    echo "      name: 'Farm: studio'"
    echo "      env: {FARM_BIN: '$farm', FARM_CONFIG: '$work/studio.yaml', FARM_KATANA_FARMS: studio}"
    for dir in tools/katana/examples/*/; do
      name="$(basename "$dir")"
      echo "  katana-$name:"
      echo "    adapter: katana-plugin"
      echo "    settings: {plugins: '$PWD/${dir}Plugins', env: {SUBPROCESS_FARM_DIR: '$work/$name'}}"
    done
  } > "$work/farms.yaml"
  export FARM_CONFIG="$work/farms.yaml"

  echo "== a local queue with two agents for FarmBridge.py"
  "$farm" queue serve --data-root "$work/queue/data" --port "$port" --agents 2 \
    > /dev/null 2> "$work/queue.log" &
  queue_pid=$!
  local waited=0
  until "$farm" --farm studio list > /dev/null 2>&1; do
    waited=$((waited + 1))
    if [ "$waited" -gt 300 ]; then
      echo "the local queue did not answer within 30s:" >&2
      cat "$work/queue.log" >&2
      exit 1
    fi
    sleep 0.1
  done

  for farm_name in katana-bridge katana-subprocess-farm; do
    echo "== farm conformance --farm $farm_name (must pass)"
    local started=$SECONDS status=0
    "$farm" conformance --farm "$farm_name" --shared-dir "$work/shared" || status=$?
    echo "-- $farm_name: exit $status in $((SECONDS - started))s"
    if [ "$status" -ne 0 ]; then
      echo "$farm_name: farm conformance exited $status, expected 0" >&2
      exit 1
    fi
  done

  echo "== farm conformance on each broken variant (must exit 12)"
  local started=$SECONDS
  local -a names=() pids=()
  for dir in tools/katana/examples/broken-*/; do
    name="$(basename "$dir")"
    ( start=$SECONDS; status=0
      "$farm" conformance --farm "katana-$name" --shared-dir "$work/shared" \
        > "$work/$name.report" 2>&1 || status=$?
      echo "$status $((SECONDS - start))" > "$work/$name.status" ) &
    names+=("$name")
    pids+=("$!")
    # Two at a time.
    if [ "${#pids[@]}" -ge 2 ]; then
      wait "${pids[0]}"
      pids=("${pids[@]:1}")
    fi
  done
  for pid in "${pids[@]}"; do
    wait "$pid"
  done
  local failed=0 status seconds
  for name in "${names[@]}"; do
    read -r status seconds < "$work/$name.status"
    echo "-- katana-$name: exit $status in ${seconds}s"
    # grep stops by itself: `| head` would leave it writing into a closed pipe (SIGPIPE).
    grep -m 5 -E '^FAILED ' "$work/$name.report" | cut -c1-200 || true
    tail -n 1 "$work/$name.report"
    if [ "$status" -ne 12 ]; then
      echo "$name: farm conformance exited $status, expected 12; its report:" >&2
      cat "$work/$name.report" >&2
      failed=1
    fi
  done
  echo "-- broken variants: $((SECONDS - started))s"
  [ "$failed" -eq 0 ] || exit 1
}

# Ends what the runs started: the queue, and the runners the example's jobs left behind
# (broken-stop on purpose; others because the suite could not stop them through the flaw).
cleanup() {
  local status=$?
  if [ -n "${queue_pid:-}" ]; then
    kill "$queue_pid" 2> /dev/null || true
    wait "$queue_pid" 2> /dev/null || true
  fi
  if [ -n "${work:-}" ] && [ -d "$work" ]; then
    python3 - "$work" <<'PY'
import json, os, signal, sys
for root, _, files in os.walk(sys.argv[1]):
    if "jobs.json" in files:
        with open(os.path.join(root, "jobs.json")) as f:
            jobs = json.load(f)["jobs"].values()
        for job in jobs:
            try:  # only a runner of the example (its pid may have been reused since)
                with open("/proc/%d/cmdline" % job["pid"], "rb") as f:
                    alive = b"SubprocessFarm.py" in f.read()
            except (OSError, TypeError):
                alive = False
            if alive:
                try:
                    os.killpg(job["pid"], signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
PY
    rm -rf "$work"
  fi
  exit "$status"
}

conformance_runs
