#!/usr/bin/env bash
# The CPU benchmarks (anekit vs ONNX Runtime, `anekit compress` vs coremltools) on another
# Linux x86_64 machine, e.g. one with 16 or more cores and no network. That machine needs
# python3 (3.12) with torch, onnx, onnxruntime, numpy and scikit-learn; coremltools and
# its two small pure-Python dependencies that such images lack travel as wheels. The
# networks are built there by scripts/make_bench_models.py (the bench models are hundreds
# of MB; the carried set is ~50 MB).
#
#   scripts/bench_remote.sh prepare DIR      # here: wheels + release bench binaries -> DIR
#   scripts/bench_remote.sh run DIR OUT      # there, from the repository root
#
# `run` builds the networks (in parallel, one process per network group), then runs
#   vs_onnxruntime at all cores, pinned to 2 cores with 2 threads, pinned to 1 core with 1
#   thread (taskset: the engines' worker threads and ONNX Runtime's Python process inherit
#   the affinity), `--block 5` as in docs/runtime.md;
#   compress_cli (BERT-base fp16, kmeans 4-bit grouped 16) at all cores;
# and writes the tables and JSON to OUT. Networks that need PyPI downloads (the CREPE pair)
# are not built there. BENCH_ONLY="convnet mlp ..." limits the networks; BENCH_SKIP="1t"
# (any of: build all 2t 1t compress) leaves runs out; BENCH_ARGS adds arguments to every
# vs_onnxruntime run (e.g. "--seconds 2"), COMPRESS_RUNS sets compress_cli's rounds.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
  dir=${2:?DIR}
  mkdir -p "$dir/wheels" "$dir/bin"
  py=${ANEKIT_PYTHON:-.venv/bin/python}
  "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$dir/wheels" coremltools==9.0 cattrs==26.2.1 pyaml==26.7.0
  # Release bench binaries (their paths from cargo's JSON messages) and the CLI.
  cargo bench -p anekit-runtime --bench vs_onnxruntime -p anekit-cli --bench compress_cli \
    --no-run --message-format=json 2>/dev/null |
    "$py" -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] in (["bench"], ["bin"]):
        name = m["target"]["name"]
        if name in ("vs_onnxruntime", "compress_cli", "anekit"):
            shutil.copy(m["executable"], sys.argv[1] + "/" + name)
            print("copied", name)
' "$dir/bin"
  strip "$dir"/bin/* 2>/dev/null || true
  du -sh "$dir"
  ;;
run)
  dir=${2:?DIR}
  out=${3:?OUT}
  mkdir -p "$out"
  py=${ANEKIT_PYTHON:-python3}
  site=$(mktemp -d)
  "$py" -m pip install --quiet --no-index --no-deps --target "$site" "$dir"/wheels/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} ANEKIT_PYTHON=$py
  cores=$(nproc)
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket)' >"$out/cpu.txt" || true
  "$py" -c 'import torch, onnx, onnxruntime, coremltools, numpy; print("torch", torch.__version__, "onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__, "coremltools", coremltools.__version__, "numpy", numpy.__version__)' >>"$out/cpu.txt" 2>/dev/null
  cat "$out/cpu.txt"
  nets=${BENCH_ONLY:-"convnet mlp mlp_big transformer_encoder decoder_sdpa lstm two_io conv1d multihead_classify tiny resnet50 bert_base mobilenet_v2 vit_b16 decoder_sdpa_512"}
  skip=${BENCH_SKIP:-}
  want() { [[ " $skip " != *" $1 "* ]]; }
  build=($nets)
  want compress && build+=(bert_base_fp16)
  t0=$(date +%s)
  if want build; then
  pids=()
  for n in "${build[@]}"; do
    "$py" scripts/make_bench_models.py --only "$n" >"$out/make_$n.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || echo "bench_remote: a network failed to build (see $out/make_*.log)" >&2; done
  # One more pass writes the manifest of everything built.
  "$py" scripts/make_bench_models.py --only tiny >>"$out/make_tiny.log" 2>&1
  echo "networks built in $(($(date +%s) - t0)) s"
  fi
  extra=(${BENCH_ARGS:-})
  bench() { "$dir/bin/vs_onnxruntime" $nets --block 5 "${extra[@]}" "$@"; }
  if want all; then bench --threads "$cores" --json "$out/vs_ort_${cores}t.json" | tee "$out/vs_ort_${cores}t.txt"; fi
  if want 2t; then taskset -c 0,1 "$dir/bin/vs_onnxruntime" $nets --block 5 "${extra[@]}" --threads 2 --json "$out/vs_ort_2t.json" | tee "$out/vs_ort_2t.txt"; fi
  if want 1t; then taskset -c 0 "$dir/bin/vs_onnxruntime" $nets --block 5 "${extra[@]}" --threads 1 --json "$out/vs_ort_1t.json" | tee "$out/vs_ort_1t.txt"; fi
  if want compress; then ANEKIT_BIN=$dir/bin/anekit "$dir/bin/compress_cli" --runs "${COMPRESS_RUNS:-3}" | tee "$out/compress_cli.txt"; fi
  ;;
*)
  sed -n '2,20p' "$0"
  exit 2
  ;;
esac
