#!/usr/bin/env bash
# `cargo deny check` for licenses, bans, duplicate versions and sources (deny.toml).
#
# What it installs: cargo-deny (pinned, from crates.io) into ${TMPDIR:-/tmp}/farm-ci-tools
# when that copy is missing or another version; a later run reuses it.
# The advisories check is left out: its database is fetched from GitHub, which CI cannot
# reach (CONTRIBUTING.md says how to run it where it can).
#
# Usage: tools/ci/cargo-deny.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_DENY_VERSION=0.20.2
TOOLS="${TMPDIR:-/tmp}/farm-ci-tools"
DENY="$TOOLS/bin/cargo-deny"

if ! "$DENY" --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then
  echo "== installing cargo-deny $CARGO_DENY_VERSION into $TOOLS (a few minutes, once)"
  cargo install --locked --quiet --root "$TOOLS" --version "$CARGO_DENY_VERSION" cargo-deny
fi

"$DENY" --version
"$DENY" check --hide-inclusion-graph bans licenses sources
