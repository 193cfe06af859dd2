#!/usr/bin/env bash
# Refit anekit's Neural Engine cost model on the public micro-benchmarks of
# crates/anekit-plan/data/measurements.json (one-op programs and synthetic blocks only) and
# rewrite crates/anekit-plan/data/calibration.json; then (with --validate) rebuild the
# whole-model validation set and rewrite docs/analyze-estimates.json and the table in
# docs/analyze.md.
#
#   scripts/calibrate.sh              # fit (seconds)
#   scripts/calibrate.sh --check      # exit 1 if calibration.json is stale
#   scripts/calibrate.sh --validate   # fit, then validate (needs scripts/setup-python.sh --with-torch)
#
# After --validate, set anekit_plan::analyze::VALIDATION_MEDIAN_ERROR_PCT to the new median
# (crates/anekit-plan/tests/calibration.rs checks that they match).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
--check)
    exec cargo run -q -p anekit-plan --example calibrate -- --check
    ;;
--validate)
    cargo run -q -p anekit-plan --example calibrate
    cargo build -q -p anekit-cli
    exec "${ANEKIT_PYTHON:-.venv/bin/python}" scripts/make_estimator_models.py
    ;;
"")
    exec cargo run -q -p anekit-plan --example calibrate
    ;;
*)
    echo "usage: scripts/calibrate.sh [--check | --validate]" >&2
    exit 2
    ;;
esac
