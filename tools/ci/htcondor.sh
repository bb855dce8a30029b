#!/usr/bin/env bash
# Real-component tests of the HTCondor adapter (package farm-htcondor).
#
# HTCondor's own submit-file parser is the judge: the htcondor==24.0.24 PyPI wheel's v1
# bindings run `htcondor.Submit(text).jobs()`, the SubmitHash -> job ClassAd code of
# condor_submit, offline and without any daemon (the 25.x wheels cannot: jobs() is a stub
# there). This script
#   1. creates a Python venv and pip-installs the pinned wheel (cp311 manylinux_2_28),
#   2. runs `cargo test -p farm-htcondor --test real_parser -- --ignored` with
#      FARM_TEST_HTCONDOR_PYTHON pointing at that venv: every example request and thousands
#      of generated adversarial ones are rendered, parsed by HTCondor, and their decoded
#      Arguments/Environment must equal the intended argv/environment exactly, with no
#      old-syntax Args/Env.
# It exits non-zero on any failure, a failed install included. The tests are #[ignore]d so a
# plain `cargo test` reports them as not run; run (--ignored) without the variable, or with
# a parser that cannot run, they fail rather than skip.
#
# Usage: tools/ci/htcondor.sh [VENV_DIR]
#   VENV_DIR                  default: <cargo target dir>/htcondor-venv (reused if present)
#   PYTHON                    interpreter for the venv (default: python3.11, else python3 if 3.11)
#   FARM_TEST_HTCONDOR_CASES  generated requests (default 4000); FARM_TEST_HTCONDOR_SEED repeats a run
# Needs: Python 3.11 with venv, PyPI (or a pip mirror/cache), cargo.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
venv="${1:-$target_dir/htcondor-venv}"
wheel_version="24.0.24"

python="${PYTHON:-}"
if [ -z "$python" ]; then
  if command -v python3.11 >/dev/null 2>&1; then
    python=python3.11
  else
    python=python3
  fi
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "htcondor.sh: $python is not Python 3.11; the htcondor==$wheel_version wheel is cp311 (set PYTHON)" >&2
  exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "htcondor==$wheel_version"
CONDOR_CONFIG=/dev/null "$venv/bin/python" -W ignore -c \
  "import htcondor, sys; assert hasattr(htcondor.Submit, 'jobs'), 'no v1 Submit.jobs()'; print(htcondor.version())"

# A run that selects no test (a filter or an #[ignore] change) must not pass silently.
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
FARM_TEST_HTCONDOR_PYTHON="$venv/bin/python" \
  cargo test -p farm-htcondor --test real_parser -- --ignored --nocapture 2>&1 | tee "$out"
if ! grep -Eq '^test result: ok\. [1-9][0-9]* passed' "$out"; then
  echo "htcondor.sh: no real-parser test ran" >&2
  exit 1
fi
