#!/usr/bin/env bash
# Real-component checks of the artist's side (issue: Katana plug-in and the queue's web page).
#
# What it installs: Debian's chromium and chromium-driver (apt-get, when missing), and pytest
# and selenium (pinned, from PyPI) into a virtualenv.
#
# What it runs, against a real local queue (`farm queue serve`) with real agent processes:
#   tools/katana/tests  the Katana FarmAPI plug-in, loaded as Katana loads plug-ins (with a
#                       stand-in Katana.FarmAPI module): staging, installation metadata,
#                       submit, watch, list, log filename, stop, restart, errors
#   tools/web/tests     the queue's web page in headless Chromium: token, a job progressing
#                       to Completed, live log without duplicate lines, stop (confirmed, by
#                       button and key), restart, priority, filter/search/sort, delete,
#                       in-place rows keeping a selection, thumbnails, the task table and
#                       retry (skipped when the queue has no tasks API), agents and their
#                       disabling, the unreachable banner, the 800 px layout; screenshots in
#                       light and dark themes go to target/web-test/ (of the repository)
#
# The farm binary is taken from cargo's target directory, so CARGO_TARGET_DIR is honoured.
#
# Usage: tools/ci/katana-and-web.sh
#   FARM_CI_VENV   virtualenv to use (default: $TMPDIR/farm-ci-web-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTEST_VERSION=9.2.0
SELENIUM_VERSION=4.51.0
VENV="${FARM_CI_VENV:-${TMPDIR:-/tmp}/farm-ci-web-venv}"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "pytest==$PYTEST_VERSION" "selenium==$SELENIUM_VERSION"

cargo build --locked -p farm
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export FARM_BIN="$target_dir/debug/farm"
# Selenium must use the Debian driver, never download one.
export SE_OFFLINE=true

echo "== Katana plug-in and web page tests"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tools/katana/tests tools/web/tests
