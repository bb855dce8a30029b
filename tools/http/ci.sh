#!/usr/bin/env bash
# CI for the `http` adapter (package farm-http). Installs nothing: every scheduler it talks
# to in tests is a wiremock emulation started in-process (our protocol and Deadline's Web
# Service), so the conformance suite, fault injection, profile checks and golden bodies run
# anywhere cargo does.
#
# Optionally, with a real server speaking our protocol on this machine (the local queue),
# the same conformance suite runs against it too:
# (the variables are not FARM_HTTP_* on purpose: those override the adapter's settings)
#   FARM_TEST_HTTP_URL=http://127.0.0.1:7575 FARM_TEST_HTTP_TOKEN=... tools/http/ci.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy -p farm-http --all-targets -- -D warnings
cargo test -p farm-http
