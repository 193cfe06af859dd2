#!/usr/bin/env bash
# Run one cargo-fuzz target for a while on several cores, then merge what it found into a
# minimized corpus and report crashes. Works offline when the fuzz binaries are built
# (`scripts/fuzz.sh --build` once with network, or copy fuzz/target from a machine that did).
#
#   scripts/fuzz.sh TARGET SECONDS [JOBS]      e.g. scripts/fuzz.sh model 3600 16
#   scripts/fuzz.sh --build                    build every target (release, debug assertions)
#   scripts/fuzz.sh --list                     the targets
#
# Uses a scratch corpus in $FUZZ_WORK (default /dev/shm/anekit-fuzz or /tmp/anekit-fuzz):
# the committed seeds (fuzz/corpus/TARGET) are read, never written. New crashes land in
# fuzz/artifacts/TARGET/; copy each, once fixed, to fuzz/corpus/TARGET/crash-<what> (see
# docs/fuzzing.md). Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly compiler or
# RUSTC_BOOTSTRAP=1 on stable (set here when no nightly toolchain is installed).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi

case "${1:-}" in
  --list) exec cargo "${toolchain[@]}" fuzz list ;;
  --build) exec nice -n 19 cargo "${toolchain[@]}" fuzz build -a ;;
  ""|-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
esac

target=$1
seconds=${2:-60}
jobs=${3:-$(nproc)}
if ! cargo "${toolchain[@]}" fuzz list | grep -qx "$target"; then
  echo "fuzz.sh: no target $target (targets: $(cargo "${toolchain[@]}" fuzz list | tr '\n' ' '))" >&2
  exit 2
fi
base=${FUZZ_WORK:-$( [ -d /dev/shm ] && echo /dev/shm/anekit-fuzz || echo /tmp/anekit-fuzz )}
work=$base/$target
mkdir -p "$work" "artifacts/$target"
# Packages are written to disk per input by the mlpackage target: keep them in memory.
export TMPDIR=$base/tmp
mkdir -p "$TMPDIR"

echo "fuzz.sh: $target for ${seconds}s on $jobs jobs, corpus $work (+ corpus/$target)" >&2
start=$(date +%s)
# -fork: one process per core, restarted on crashes and OOMs; -ignore_crashes keeps going so
# one campaign reports every distinct crash. rss/malloc limits: an allocation over 2 GiB is
# a crash (the input does not justify it).
set +e
nice -n 19 cargo "${toolchain[@]}" fuzz run -a "$target" "$work" "corpus/$target" -- \
  -fork="$jobs" -ignore_crashes=1 -ignore_ooms=0 -ignore_timeouts=0 \
  -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 2>&1 | tee "$base/$target.log" | grep -E '^#|crash|ERROR|stat::' >&2
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))
crashes=$(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
echo "fuzz.sh: $target ran ${elapsed}s x $jobs jobs; corpus $(ls "$work" | wc -l) inputs; $crashes crash/oom/timeout files in fuzz/artifacts/$target; libFuzzer exit $status; log $base/$target.log" >&2
[ "$crashes" -eq 0 ]
