#!/usr/bin/env bash
# Deadline 10 without a Deadline repository (none can be installed here): the FarmBridge
# plug-in and the Web Service profile, each against the real `farm run-task`.
#
# What it installs: pytest (pinned, from PyPI) into a virtualenv.
#
# What it runs, with FARM_BIN set to the `farm` built from this tree:
#   tools/deadline/tests  the FarmBridge plug-in (tools/deadline/FarmBridge/) on a stand-in
#                         of Deadline's plug-in API: tasks run through `farm run-task`, a
#                         failing step fails the task with its message, a missing `farm`
#                         binary is a clear error
#   farm-http's Deadline Web Service emulation, which runs every task through the real
#                         `farm run-task` instead of the library call `cargo test` uses
#
# Usage: tools/ci/deadline.sh
#   FARM_CI_VENV   virtualenv to use (default: $TMPDIR/farm-ci-deadline-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTEST_VERSION=9.2.0
VENV="${FARM_CI_VENV:-${TMPDIR:-/tmp}/farm-ci-deadline-venv}"

if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/pytest" --version 2>&1 | grep -q "$PYTEST_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "pytest==$PYTEST_VERSION"
fi

cargo build --locked -p farm
FARM_BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/farm"
case "${CARGO_TARGET_DIR:-}" in /*) FARM_BIN="$CARGO_TARGET_DIR/debug/farm" ;; esac
export FARM_BIN
"$FARM_BIN" run-task --help > /dev/null

echo "== FarmBridge plug-in (pytest)"
out="$(mktemp)"
"$VENV/bin/pytest" -q -rs tools/deadline/tests | tee "$out"
# The tests skip only without FARM_BIN, which is set here: a skip in CI is a failure.
if grep -q "skipped" "$out"; then
  echo "deadline.sh: tests were skipped although FARM_BIN is set" >&2
  exit 1
fi

echo "== Deadline Web Service emulation through farm run-task"
cargo test --locked -p farm-http --test conformance deadline
