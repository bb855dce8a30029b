#!/usr/bin/env bash
# Real-component checks of the local queue (package farm-queue, run as `farm queue serve`),
# for CI.
#
# What it installs: schemathesis (pinned, from PyPI) into a virtualenv; Rust crates come
# through cargo.
#
# What it runs:
#   schemathesis against docs/http-scheduler.openapi.yaml and a real `farm queue serve`:
#   fails on any server error (5xx) and on any response that does not match the spec
#   (status codes, bodies, content types, headers, Allow on 405, auth). The server runs with
#   no agents, so the fuzzed jobs it accepts are stored and listed but never executed.
#
#   The HTTP adapter's conformance suite against a real server (package farm-http,
#   tests/conformance.rs, `real_server`, gated on FARM_TEST_HTTP_URL): a second real queue,
#   with four local agents, reached through the `http` adapter's built-in profile.
#
#   Tokens travel in environment variables only (schemathesis reads its token through
#   tools/ci/local-queue.schemathesis.toml), never on a command line.
#
#   With --with-cargo-tests, first `cargo test -p farm-queue -p farm-local -p farm` (the
#   queue's process tests are the `farm` package's, since they run `farm queue serve` and
#   `farm agent`). CI does not need that flag: those tests need nothing but this machine, so
#   `cargo test --workspace` already runs them (the conformance suite against a real server with real agent processes; the crash tests:
#   kill -9 of the server with 1,000 jobs in flight, agents killed and frozen mid-task, a
#   graceful restart; remote agents over TCP with and without the token and over ssh; the
#   queue the `local` adapter starts on demand).
#
# Usage: tools/ci/local-queue.sh [--with-cargo-tests]
#   FARM_CI_VENV      virtualenv to use (default: $TMPDIR/farm-ci-venv)
#   ST_MAX_EXAMPLES   schemathesis examples per operation (default 50)
#   ST_SEED           schemathesis seed (default a fixed one, so CI is repeatable; set
#                     ST_SEED=random to explore new cases)
set -euo pipefail
cd "$(dirname "$0")/../.."

SCHEMATHESIS_VERSION=4.32.5
VENV="${FARM_CI_VENV:-${TMPDIR:-/tmp}/farm-ci-venv}"
RUN_CARGO_TESTS=0
[ "${1:-}" = "--with-cargo-tests" ] && RUN_CARGO_TESTS=1

if [ "$RUN_CARGO_TESTS" = 1 ]; then
  echo "== cargo test -p farm-queue -p farm-local -p farm"
  cargo test --locked -p farm-queue -p farm-local -p farm
fi

echo "== schemathesis $SCHEMATHESIS_VERSION against docs/http-scheduler.openapi.yaml"
if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  if ! python3 -m venv "$VENV"; then
    # Debian's python3 needs its venv module installed separately.
    apt-get update -qq && apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked -p farm --bin farm
work="$(mktemp -d)"
server_pids=()
cleanup() {
  for pid in "${server_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

# start_queue NAME ARGS...: a `farm queue serve` on a free port with data root
# $work/NAME; sets $url. Its output goes to $work/NAME.out and $work/NAME.err.
start_queue() {
  local name=$1
  shift
  RUST_LOG=warn "$target_dir/debug/farm" queue serve --port 0 --data-root "$work/$name" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  server_pids+=("$pid")
  for _ in $(seq 1 200); do
    grep -q "listening on" "$work/$name.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.err"; echo "the queue server did not start" >&2; exit 1; }
    sleep 0.1
  done
  url="$(awk '/listening on/ {print $NF; exit}' "$work/$name.out")"
  [ -n "$url" ] || { cat "$work/$name.err"; echo "the queue server did not start" >&2; exit 1; }
}

start_queue queue --agents 0

# positive_data_acceptance is off: the server validates requests more strictly than the
# schema can say (known placeholders, frame-set syntax, the reserved FARM_ prefix), and
# answers such schema-valid but invalid requests with 422, as the spec documents.
# Run from the scratch directory: schemathesis keeps a cache in the current directory.
repo="$(pwd)"
(cd "$work" && FARM_CI_QUEUE_TOKEN="$(cat "$work/queue/api.token")" \
  "$VENV/bin/st" --config-file "$repo/tools/ci/local-queue.schemathesis.toml" run "$repo/docs/http-scheduler.openapi.yaml" \
  --url "$url" \
  --max-examples "${ST_MAX_EXAMPLES:-50}" \
  $( [ "${ST_SEED:-}" = random ] || echo --seed "${ST_SEED:-20261122}" ) \
  --exclude-checks positive_data_acceptance \
  --generation-database none \
  --no-color \
  --report junit --report-dir "$work/report")

if grep -qiE "panicked|ERROR" "$work/queue.err"; then
  echo "the queue server logged errors during the schemathesis run:" >&2
  grep -iE "panicked|ERROR" "$work/queue.err" | head -20 >&2
  exit 1
fi
echo "schemathesis: no server errors, no spec mismatches"

echo "== the http adapter's conformance suite against a real queue with agents"
start_queue http-conformance --agents 4 --heartbeat 200ms --agent-timeout 5s --kill-grace 1s
FARM_TEST_HTTP_URL="$url" FARM_TEST_HTTP_TOKEN="$(cat "$work/http-conformance/api.token")" \
  cargo test --locked -p farm-http --test conformance real_server -- --ignored --test-threads 4
if grep -qiE "panicked" "$work/http-conformance.err"; then
  echo "the queue server panicked during the conformance run:" >&2
  grep -iE "panicked" "$work/http-conformance.err" | head -20 >&2
  exit 1
fi
