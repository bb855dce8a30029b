#!/usr/bin/env bash
# The `ray-jobs` HTTP profile against a live Ray head node: the conformance suite and the
# lost-answer retry test (adapters/http/tests/ray.rs, gated on FARM_RAY_URL).
#
# What it does:
#   1. installs a pinned ray[default] into a venv cached under ${TMPDIR:-/tmp} (~60 s once);
#   2. builds the tests (outside the namespace: cargo may need the registry);
#   3. creates a network namespace with only `lo` up (some Ray ports bind every address,
#      so Ray must not see any other interface) and starts one head node in it;
#   4. runs the gated tests inside the namespace against http://127.0.0.1:8265;
#   5. stops Ray (`ray stop --force`, then the recorded PIDs) and deletes the namespace,
#      also on failure.
# Needs root (ip netns), python3 with venv, and bash. Budget: under 5 minutes once the
# venv and the build are cached (the suite's ~25 Ray jobs cost 1-2 s each).
#
# Environment:
#   FARM_CI_RAY_VENV     virtualenv to use (default: ${TMPDIR:-/tmp}/farm-ci-ray-venv)
#   CARGO_TARGET_DIR     passed through to cargo
set -euo pipefail

RAY_VERSION=2.60.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FARM_CI_RAY_VENV:-${TMPDIR:-/tmp}/farm-ci-ray-venv}"
NS="farm-ray-$$"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/farm-ray.XXXXXX")"
PORT=8265
started=$(date +%s)

say() { printf 'ray.sh: %s\n' "$*" >&2; }

cleanup() {
  local status=$?
  if ip netns list 2>/dev/null | grep -qw "$NS"; then
    say "stopping Ray"
    ip netns exec "$NS" env RAY_USAGE_STATS_ENABLED=0 "$VENV/bin/ray" stop --force >/dev/null 2>&1 || true
    # Whatever survived: every process still inside the namespace (ours only).
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns delete "$NS" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  say "done in $(( $(date +%s) - started )) s (status $status)"
  exit "$status"
}
trap cleanup EXIT

if ! command -v ip >/dev/null; then
  say "installing iproute2"
  apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi

if [ ! -x "$VENV/bin/ray" ] || ! "$VENV/bin/python" -c "import ray, sys; sys.exit(ray.__version__ != '$RAY_VERSION')" 2>/dev/null; then
  say "installing ray[default]==$RAY_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "ray[default]==$RAY_VERSION"
fi

say "building the tests"
(cd "$ROOT" && cargo test -p farm-http --test ray --no-run >/dev/null 2>&1) || (cd "$ROOT" && cargo test -p farm-http --test ray --no-run)

say "starting a Ray head node in network namespace $NS (only lo up)"
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" env RAY_USAGE_STATS_ENABLED=0 "$VENV/bin/ray" start --head \
  --node-ip-address=127.0.0.1 --include-dashboard=true --dashboard-host=127.0.0.1 \
  --dashboard-port="$PORT" --num-cpus=2 --disable-usage-stats --temp-dir="$WORK/ray" \
  >"$WORK/ray-start.log" 2>&1 || { cat "$WORK/ray-start.log" >&2; exit 1; }

# The Jobs API answers once the dashboard's job module is up.
for _ in $(seq 1 60); do
  if ip netns exec "$NS" "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/api/jobs/', timeout=2)" 2>/dev/null; then
    break
  fi
  sleep 1
done
say "Ray is up after $(( $(date +%s) - started )) s"

say "running the gated tests"
cd "$ROOT"
ip netns exec "$NS" env FARM_RAY_URL="http://127.0.0.1:$PORT" \
  cargo test -p farm-http --test ray -- --ignored --test-threads=2
