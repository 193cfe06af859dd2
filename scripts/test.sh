#!/usr/bin/env bash
# Run every test of the workspace, after installing what the interop tests need
# (a Python venv with coremltools 9.0: scripts/setup-python.sh).
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-python.sh
# The interop tests compare anekit with coremltools; with the venv in place they must run.
export ANEKIT_PYTHON="${ANEKIT_PYTHON:-$PWD/.venv/bin/python}"
export ANEKIT_REQUIRE_INTEROP=1
# The HTML report of `anekit analyze` is tested in headless Chromium (Debian's chromium).
scripts/setup-chromium.sh >/dev/null
export ANEKIT_REQUIRE_CHROMIUM=1
cargo test --workspace --no-fail-fast "$@"
