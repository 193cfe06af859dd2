#!/usr/bin/env python3
"""coremltools oracle for anekit-compress: builds source models, runs
`coremltools.optimize.coreml` on them, and measures reconstruction errors with coremltools'
own decompression.

Usage (from the repository root, with the venv of scripts/setup-python.sh):

    .venv/bin/python scripts/compress_oracle.py make     DIR
    .venv/bin/python scripts/compress_oracle.py compress JOBS.json
    .venv/bin/python scripts/compress_oracle.py error    JOBS.json
    .venv/bin/python scripts/compress_oracle.py synth    OUT.mlpackage PARAMS_M

Only needs coremltools and numpy (CI's interop venv); k-means settings whose groups have
fewer than 10,000 elements (or fp32 weights) make coremltools use scikit-learn: such jobs
report `{"ok": false, "error": "ModuleNotFoundError..."}` when it is not installed.

make      Writes source packages built with coremltools' MIL builder and written by
          ct.convert (empty pass pipeline, so the weights are exactly the ones given):
          src_fp16_ios18, src_fp16_ios16, src_fp32_ios18 (.mlpackage). Every weight is a
          named const: `w_lin` [64,96] (linear), `w_conv` [32,16,3,3] (conv), `w_convt`
          [16,24,3,3] (conv_transpose), `w_mm` [96,48] (matmul y), `w_mmt` [40,96] (matmul y,
          transpose_y), `w_x` [32,96] (matmul x), `w_bmm` [4,96,32] (batched matmul y),
          `w_special` [64,96] (zero rows, constant rows, values on rounding ties, tiny
          values), `w_shared` [96,96] (linear and matmul: consumers disagree on the axes),
          `w_small` [16,16] (under the 2048 threshold), `b_lin` [64] (1-D).
          ties_fp16_ios18, ties_fp32_ios18: 96x96 linear weights on which magnitude
          pruning's threshold (np.percentile of |w|) falls on a tie: `w_tie_up` /
          `w_tie_down` (the two magnitudes at the median are adjacent values whose midpoint
          rounds up / down), `w_tie_subnormal` (adjacent subnormals), `w_tie_run` (400 equal
          magnitudes around the median), `w_tie_coarse` (multiples of 1/64).
compress  JOBS.json is a list of {"src", "out", "stages": [{"kind": "linear" | "palettize" |
          "prune", "global": {...} | null, "op_type": {...}, "op_name": {...}}]}; each stage
          is an OptimizationConfig of OpLinearQuantizerConfig / OpPalettizerConfig /
          OpMagnitudePrunerConfig / OpThresholdPrunerConfig (prune: "threshold" key picks the
          latter) keyword arguments; stages after the first run with joint_compression=True.
          Prints {"results": [{"out", "ok", "seconds", "error"?}]}; "seconds" is the time of
          the ct.optimize.coreml calls (which load, compress and re-serialize the model).
error     JOBS.json is a list of {"src", "pkgs": [...]}; for each package every weight
          feeding a non-constexpr op is decompressed by coremltools (pymil
          materialized_val_inference, as decompress_weights) and compared with the source
          const of the same base name. Prints {"results": [{"src", "pkg", "weights": {name:
          {"sse", "sum_sq", "max_abs", "n"}}}]}.
synth     A synthetic fp16 iOS18 model of about PARAMS_M million parameters (a stack of
          linear layers 1024→4096→1024 and 4096-wide matmuls), for benchmarks.
"""

import json
import os
import sys
import time
from oracle_util import import_coremltools as _ct
from oracle_util import stdout_to_stderr as _stdout_to_stderr

SUFFIXES = (
    "_palettized_pcs",
    "_sparsified",
    "_palettized",
    "_quantized",
)


def _special(rng, shape, np, dtype):
    w = rng.standard_normal(shape).astype(np.float32) * 0.05
    w[0] = 0.0  # all-zero row: scale 0, 0/0
    w[1] = 0.125  # constant row
    w[2, :8] = [0.5, -0.5, 1.5, -1.5, 0.25, 2.5, -2.5, 0.75]  # ties after scaling
    w[2, 8:] = 0.0
    w[3] = rng.standard_normal(shape[1]) * 1e-6  # tiny values
    w[4, :] = np.linspace(-1, 1, shape[1])
    return w.astype(dtype)


def build(target, dtype_name, seed=0):
    ct = _ct()
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    np_dt = np.float16 if dtype_name == "fp16" else np.float32
    t = types.fp16 if dtype_name == "fp16" else types.fp32
    rng = np.random.default_rng(seed)

    def W(*shape, scale=0.05):
        return (rng.standard_normal(shape) * scale).astype(np_dt)

    weights = {
        "w_lin": W(64, 96),
        "b_lin": W(64),
        "w_conv": W(32, 16, 3, 3),
        "w_convt": W(16, 24, 3, 3),
        "w_mm": W(96, 48),
        "w_mmt": W(40, 96),
        "w_x": W(32, 96),
        "w_bmm": W(4, 96, 32),
        "w_special": _special(rng, (64, 96), np, np_dt),
        "w_shared": W(96, 96),
        "w_small": W(16, 16),
    }
    specs = [
        mb.TensorSpec(shape=(1, 96), dtype=t),
        mb.TensorSpec(shape=(1, 16, 8, 8), dtype=t),
        mb.TensorSpec(shape=(96, 4), dtype=t),
        mb.TensorSpec(shape=(4, 1, 96), dtype=t),
        mb.TensorSpec(shape=(1, 16), dtype=t),
    ]

    @mb.program(input_specs=specs, opset_version=target)
    def prog(x, img, col, xb, xs):
        c = {k: mb.const(val=v, name=k) for k, v in weights.items()}
        y1 = mb.linear(x=x, weight=c["w_lin"], bias=c["b_lin"], name="y_lin")
        y2 = mb.conv(x=img, weight=c["w_conv"], pad_type="same", name="y_conv")
        y3 = mb.conv_transpose(x=img, weight=c["w_convt"], name="y_convt")
        y4 = mb.matmul(x=x, y=c["w_mm"], name="y_mm")
        y5 = mb.matmul(x=x, y=c["w_mmt"], transpose_y=True, name="y_mmt")
        y6 = mb.matmul(x=c["w_x"], y=col, name="y_x")
        y7 = mb.matmul(x=xb, y=c["w_bmm"], name="y_bmm")
        y8 = mb.linear(x=x, weight=c["w_special"], name="y_special")
        y9 = mb.linear(x=x, weight=c["w_shared"], name="y_shared_lin")
        y10 = mb.matmul(x=x, y=c["w_shared"], name="y_shared_mm")
        y11 = mb.linear(x=xs, weight=c["w_small"], name="y_small")
        return y1, y2, y3, y4, y5, y6, y7, y8, y9, y10, y11

    with _stdout_to_stderr():
        m = ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=target,
            compute_precision=ct.precision.FLOAT16 if dtype_name == "fp16" else ct.precision.FLOAT32,
            pass_pipeline=ct.PassPipeline.EMPTY,
            skip_model_load=True,
        )
    return m


def _ties(np, dtype, lo, hi, seed):
    """A 96x96 weight whose sorted magnitudes are `lo` at index 4607 and `hi` at 4608 (the
    two values np.percentile(|w|, 50) interpolates between), 4607 smaller and 4607 larger
    magnitudes, random signs and places."""
    rng = np.random.default_rng(seed)
    n = 96 * 96
    small = rng.uniform(0.0, 1.0, n // 2 - 1) * float(lo)
    large = float(hi) * (1.0 + rng.uniform(0.01, 1.0, n // 2 - 1))
    mags = np.concatenate([small, [lo, hi], large]).astype(dtype)
    signs = rng.choice([-1.0, 1.0], n).astype(dtype)
    return (rng.permutation(mags) * signs).reshape(96, 96)


def build_ties(target, dtype_name):
    """Weights where magnitude pruning's threshold falls on a tie (see `make`)."""
    ct = _ct()
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    np_dt = np.float16 if dtype_name == "fp16" else np.float32
    t = types.fp16 if dtype_name == "fp16" else types.fp32
    eps = float(np.finfo(np_dt).eps)
    tiny = float(np.finfo(np_dt).smallest_subnormal)
    rng = np.random.default_rng(7)
    run = (rng.standard_normal((96, 96)) * 0.05).astype(np_dt)
    flat = run.reshape(-1)
    # 400 magnitudes equal to the median, at random places, random signs.
    idx = rng.permutation(flat.size)[:400]
    med = np_dt(np.median(np.abs(flat)))
    flat[idx] = med * rng.choice([-1, 1], 400).astype(np_dt)
    coarse = (np.round(rng.standard_normal((96, 96)) * 4) / 64).astype(np_dt)
    weights = {
        # Adjacent values whose midpoint rounds up to `hi` (even mantissa): everything up
        # to and including hi is pruned, 4607 weights are kept.
        "w_tie_up": _ties(np, np_dt, 1.0 + eps, 1.0 + 2 * eps, 1),
        # ... rounds down to `lo`: 4608 weights are kept.
        "w_tie_down": _ties(np, np_dt, 1.0 + 2 * eps, 1.0 + 3 * eps, 2),
        # Adjacent subnormals: (hi - lo) * 0.5 underflows to 0 in fp16.
        "w_tie_subnormal": _ties(np, np_dt, 3 * tiny, 4 * tiny, 3),
        # A run of 400 equal magnitudes around the median.
        "w_tie_run": run,
        # Few distinct values (multiples of 1/64): long runs of ties everywhere.
        "w_tie_coarse": coarse,
    }
    specs = [mb.TensorSpec(shape=(1, 96), dtype=t)]

    @mb.program(input_specs=specs, opset_version=target)
    def prog(x):
        return tuple(
            mb.linear(x=x, weight=mb.const(val=v, name=k), name="y" + k[1:])
            for k, v in weights.items()
        )

    with _stdout_to_stderr():
        return ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=target,
            compute_precision=ct.precision.FLOAT16 if dtype_name == "fp16" else ct.precision.FLOAT32,
            pass_pipeline=ct.PassPipeline.EMPTY,
            skip_model_load=True,
        )


def cmd_make(out_dir):
    ct = _ct()
    os.makedirs(out_dir, exist_ok=True)
    made = []
    for name, target, dt, builder in [
        ("src_fp16_ios18", ct.target.iOS18, "fp16", build),
        ("src_fp16_ios16", ct.target.iOS16, "fp16", build),
        ("src_fp32_ios18", ct.target.iOS18, "fp32", build),
        ("ties_fp16_ios18", ct.target.iOS18, "fp16", build_ties),
        ("ties_fp32_ios18", ct.target.iOS18, "fp32", build_ties),
    ]:
        m = builder(target, dt)
        path = os.path.join(out_dir, name + ".mlpackage")
        with _stdout_to_stderr():
            m.save(path)
        made.append(path)
    return {"ok": True, "made": made}


def _op_config(kind, kwargs):
    ct = _ct()
    from coremltools.optimize import coreml as cto

    if kwargs is None:
        return None
    kwargs = dict(kwargs)
    if kind == "linear":
        if isinstance(kwargs.get("block_size"), list):
            kwargs["block_size"] = tuple(kwargs["block_size"])
        return cto.OpLinearQuantizerConfig(**kwargs)
    if kind == "palettize":
        return cto.OpPalettizerConfig(**kwargs)
    if kind == "prune":
        if "threshold" in kwargs:
            return cto.OpThresholdPrunerConfig(**kwargs)
        if isinstance(kwargs.get("n_m_ratio"), list):
            kwargs["n_m_ratio"] = tuple(kwargs["n_m_ratio"])
        return cto.OpMagnitudePrunerConfig(**kwargs)
    raise ValueError(f"unknown stage kind {kind!r}")


def _run_stage(model, stage, joint):
    from coremltools.optimize import coreml as cto

    kind = stage["kind"]
    cfg = cto.OptimizationConfig(
        global_config=_op_config(kind, stage.get("global")),
        op_type_configs={k: _op_config(kind, v) for k, v in stage.get("op_type", {}).items()},
        op_name_configs={k: _op_config(kind, v) for k, v in stage.get("op_name", {}).items()},
    )
    fn = {
        "linear": cto.linear_quantize_weights,
        "palettize": cto.palettize_weights,
        "prune": cto.prune_weights,
    }[kind]
    if joint:
        return fn(model, cfg, joint_compression=True)
    return fn(model, cfg)


def cmd_compress(jobs_path):
    ct = _ct()
    with open(jobs_path) as f:
        jobs = json.load(f)
    results = []
    for job in jobs:
        r = {"out": job["out"], "ok": False}
        try:
            with _stdout_to_stderr():
                t_load = time.perf_counter()
                m = ct.models.MLModel(job["src"], skip_model_load=True)
                t0 = time.perf_counter()
                for i, stage in enumerate(job["stages"]):
                    m = _run_stage(m, stage, joint=i > 0)
                r["seconds"] = time.perf_counter() - t0
                m.save(job["out"])
                # load + compress + save: what one `anekit compress` command does (less
                # its accuracy check), without the interpreter's start and imports.
                r["total_seconds"] = time.perf_counter() - t_load
            r["ok"] = True
        except Exception as e:  # noqa: BLE001
            r["error"] = f"{type(e).__name__}: {e}"
        results.append(r)
    return {"results": results}


def _program(path):
    ct = _ct()
    from coremltools.converters.mil.frontend.milproto import load as milproto_load

    m = ct.models.MLModel(path, skip_model_load=True)
    spec = m.get_spec()
    return milproto_load.load(spec, spec.specificationVersion, file_weights_dir=m.weights_dir)


def _base(name):
    for s in SUFFIXES:
        if name.endswith(s):
            return _base(name[: -len(s)])
    return name


def _final_weights(prog):
    """{base name: decompressed value} of every weight feeding a real op, after coremltools'
    own WeightDecompressor pass (what decompress_weights runs) turned every constexpr chain
    into a const."""
    import numpy as np
    from coremltools.optimize.coreml._quantization_passes import WeightDecompressor

    WeightDecompressor(op_selector=lambda op: True).apply(prog)
    out = {}

    def walk(block):
        for op in block.operations:
            for b in op.blocks:
                walk(b)
            if op.op_type != "const":
                continue
            v = op.outputs[0]
            if not v.child_ops:
                continue
            arr = np.asarray(v.val)
            if arr.dtype.kind != "f" or arr.size < 10:
                continue
            out[_base(v.name)] = arr.astype(np.float64)

    for fn in prog.functions.values():
        walk(fn)
    return out


def cmd_error(jobs_path):
    import numpy as np

    with open(jobs_path) as f:
        jobs = json.load(f)
    results = []
    for job in jobs:
        with _stdout_to_stderr():
            src = _final_weights(_program(job["src"]))
        for pkg in job["pkgs"]:
            with _stdout_to_stderr():
                got = _final_weights(_program(pkg))
            ws = {}
            for name, ref in src.items():
                if name not in got or got[name].shape != ref.shape:
                    continue
                d = got[name] - ref
                ws[name] = {
                    "sse": float(np.sum(d * d)),
                    "sum_sq": float(np.sum(ref * ref)),
                    "max_abs": float(np.max(np.abs(d))) if d.size else 0.0,
                    "n": int(ref.size),
                }
            results.append({"src": job["src"], "pkg": pkg, "weights": ws})
    return {"results": results}


def cmd_synth(out, params_m):
    ct = _ct()
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    rng = np.random.default_rng(1)
    d, h = 1024, 4096
    per_layer = 2 * d * h
    layers = max(1, int(round(float(params_m) * 1e6 / per_layer)))
    ws = []
    for i in range(layers):
        ws.append((f"l{i}_up", (rng.standard_normal((h, d)) * 0.02).astype(np.float16)))
        ws.append((f"l{i}_down", (rng.standard_normal((d, h)) * 0.02).astype(np.float16)))

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, d), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def prog(x):
        for name, w in ws:
            x = mb.linear(x=x, weight=mb.const(val=w, name=name), name=name + "_out")
            if name.endswith("_up"):
                x = mb.relu(x=x)
        return x

    with _stdout_to_stderr():
        m = ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS18,
            compute_precision=ct.precision.FLOAT16,
            pass_pipeline=ct.PassPipeline.EMPTY,
            skip_model_load=True,
        )
        m.save(out)
    return {"ok": True, "out": out, "layers": layers, "params": layers * per_layer}


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    try:
        if cmd == "make" and len(argv) == 3:
            res = cmd_make(argv[2])
        elif cmd == "compress" and len(argv) == 3:
            res = cmd_compress(argv[2])
        elif cmd == "error" and len(argv) == 3:
            res = cmd_error(argv[2])
        elif cmd == "synth" and len(argv) == 4:
            res = cmd_synth(argv[2], argv[3])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"ok": False, "command": cmd, "error": f"{type(e).__name__}: {e}"}))
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
