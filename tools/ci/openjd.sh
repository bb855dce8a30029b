#!/usr/bin/env bash
# OpenJD adapter CI: installs pinned openjd-cli and deadline into a cached venv, then runs
# the goldens, the deadline-cloud replay tests, the real `deadline` CLI against the local
# Deadline Cloud emulation (tools/openjd/deadline_emulator.py, loopback only, dummy
# credentials; never AWS), the gated oracle tests (openjd check on
# every golden, >= 2,000 adversarial bundles through openjd-model, sample `openjd run`s
# byte-exact, the adapter's check through the real openjd check), the conformance suite on
# the local transport (its check checks included), and the benchmark.
# Fails loudly if anything is missing. Runtime on a loaded 2-core machine: ~3-4 min after
# the first build.
set -euo pipefail
OPENJD_CLI_VERSION=0.8.0
DEADLINE_VERSION=0.60.10
VENV="${TMPDIR:-/tmp}/farm-openjd-venv-${OPENJD_CLI_VERSION}-${DEADLINE_VERSION}"
cd "$(dirname "$0")/../.."

if [ ! -x "$VENV/bin/openjd" ] || [ ! -x "$VENV/bin/deadline" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "openjd-cli==${OPENJD_CLI_VERSION}" "deadline==${DEADLINE_VERSION}"
fi
"$VENV/bin/openjd" --help > /dev/null || { echo "openjd is not runnable from $VENV" >&2; exit 1; }
"$VENV/bin/deadline" --help > /dev/null || { echo "deadline is not runnable from $VENV" >&2; exit 1; }
"$VENV/bin/python" -c "import openjd.model" || { echo "openjd-model is missing from $VENV" >&2; exit 1; }
"$VENV/bin/python" -c "import botocore.loaders as l; l.Loader().load_service_model('deadline', 'service-2')" \
  || { echo "botocore in $VENV has no deadline service model" >&2; exit 1; }
[ -x /usr/bin/env ] || { echo "/usr/bin/env is missing: every action runs through it" >&2; exit 1; }

export FARM_OPENJD_BIN="$VENV/bin/openjd"
export FARM_OPENJD_CASES="${FARM_OPENJD_CASES:-2000}"
cargo test -p farm-openjd
FARM_DEADLINE_BIN="$VENV/bin/deadline" FARM_DEADLINE_EMULATOR_PY="$PWD/tools/openjd/deadline_emulator.py" \
  cargo test -p farm-openjd --test deadline_emulated -- --ignored
cargo test -p farm-openjd --test oracle -- --ignored
cargo test -p farm-openjd --test conformance -- --ignored --test-threads 2
cargo build -p farm
bash tools/ci/openjd-katana-smoke.sh "${CARGO_TARGET_DIR:-target}/debug/farm" "$VENV/bin/openjd"
cargo bench -p farm-openjd --bench render_vs_check
