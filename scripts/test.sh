#!/usr/bin/env bash
# Run every test of the workspace, after installing what the interop tests need
# (a Python venv with coremltools 9.0 and one with coreai-core 1.0.0b3:
# scripts/setup-python.sh, scripts/setup-python.sh --coreai).
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-python.sh
scripts/setup-python.sh --coreai
# The interop tests compare anekit with coremltools and with coreai-core (Core AI); with the
# venvs in place they must run.
export ANEKIT_PYTHON="${ANEKIT_PYTHON:-$PWD/.venv/bin/python}"
export ANEKIT_COREAI_PYTHON="${ANEKIT_COREAI_PYTHON:-$PWD/.venv-coreai/bin/python}"
export ANEKIT_REQUIRE_INTEROP=1
# The HTML report of `anekit analyze` is tested in headless Chromium (Debian's chromium).
scripts/setup-chromium.sh >/dev/null
export ANEKIT_REQUIRE_CHROMIUM=1
cargo test --workspace --no-fail-fast "$@"
