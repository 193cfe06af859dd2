#!/usr/bin/env python3
"""Build the models of anekit's memory benchmark into target/memory-models/.

    .venv/bin/python scripts/make_memory_model.py [--layers 18] [--force]
    cargo bench -p anekit-runtime --bench memory

A decoder-only transformer with random weights, > 1 billion parameters (Llama-like: d 2048,
FFN 5632 with SiLU gating, vocabulary 32000, 18 layers, LayerNorm), written with
coremltools' MIL builder as an fp16 iOS18 ML Program that runs one decode step (input: one
token id, output: the logits). coremltools 9.0 then compresses it twice:

- `int4_block.mlpackage`: linear_quantize_weights, int4, linear_symmetric, per block of 32
  (constexpr_blockwise_shift_scale);
- `lut4.mlpackage`: palettize_weights, 4 bits, mode "uniform" (constexpr_lut_to_dense);
- `fp16.mlpackage`: the uncompressed model.

Nothing is committed (the fp16 package is 2.1 GB); generating takes a few minutes and about
8 GB of memory. The benchmark loads each package on anekit's CPU backend, runs the decode
step, and reports peak RSS against the package size, and the output against the same model
run with every weight decompressed at load.
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import coremltools as ct
import coremltools.optimize.coreml as cto
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "memory-models"

D, FFN, VOCAB = 2048, 5632, 32000


def log(msg):
    print(f"make_memory_model: {msg}", flush=True)


def build_fp16(layers, seed=0):
    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float16)

    def ones(n):
        return (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 1), dtype=types.int32)],
                opset_version=ct.target.iOS18)
    def prog(ids):
        x = mb.gather(x=w(VOCAB, D), indices=ids, axis=0, name="embed")  # [1, 1, D]
        for i in range(layers):
            h = mb.layer_norm(x=x, axes=[-1], gamma=ones(D), beta=np.zeros(D, np.float16), epsilon=np.float16(1e-5))
            q = mb.linear(x=h, weight=w(D, D), name=f"l{i}_q")
            k = mb.linear(x=h, weight=w(D, D), name=f"l{i}_k")
            v = mb.linear(x=h, weight=w(D, D), name=f"l{i}_v")
            s = mb.matmul(x=q, y=k, transpose_y=True)
            s = mb.mul(x=s, y=np.float16(1.0 / np.sqrt(D)))
            p = mb.softmax(x=s, axis=-1)
            a = mb.matmul(x=p, y=v)
            x = mb.add(x=x, y=mb.linear(x=a, weight=w(D, D), name=f"l{i}_o"))
            h = mb.layer_norm(x=x, axes=[-1], gamma=ones(D), beta=np.zeros(D, np.float16), epsilon=np.float16(1e-5))
            g = mb.silu(x=mb.linear(x=h, weight=w(FFN, D), name=f"l{i}_gate"))
            u = mb.linear(x=h, weight=w(FFN, D), name=f"l{i}_up")
            x = mb.add(x=x, y=mb.linear(x=mb.mul(x=g, y=u), weight=w(D, FFN), name=f"l{i}_down"))
        x = mb.layer_norm(x=x, axes=[-1], gamma=ones(D), beta=np.zeros(D, np.float16), epsilon=np.float16(1e-5))
        return mb.linear(x=x, weight=w(VOCAB, D), name="logits")

    return ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                      compute_precision=ct.precision.FLOAT16)


def save(model, name):
    path = OUT / f"{name}.mlpackage"
    if path.exists():
        shutil.rmtree(path)
    model.save(str(path))
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    log(f"  {path.relative_to(ROOT)}: {size / 1e9:.2f} GB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=18)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    names = ["fp16", "int4_block", "lut4"]
    if not a.force and all((OUT / f"{n}.mlpackage").is_dir() for n in names):
        log("up to date (--force rebuilds)")
        return
    params = 2 * VOCAB * D + a.layers * (4 * D * D + 3 * D * FFN)
    log(f"building the fp16 model: {a.layers} layers, {params / 1e9:.3f} B parameters")
    t0 = time.time()
    m = build_fp16(a.layers)
    save(m, "fp16")
    log(f"  {time.time() - t0:.0f} s; int4 per-block quantization (coremltools)")
    q = cto.linear_quantize_weights(m, cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32, weight_threshold=2048)))
    save(q, "int4_block")
    del q
    log(f"  {time.time() - t0:.0f} s; 4-bit palettization (coremltools, uniform LUT)")
    p = cto.palettize_weights(m, cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(
        mode="uniform", nbits=4, weight_threshold=2048)))
    save(p, "lut4")
    (OUT / "params.txt").write_text(f"{params}\n")
    log(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
