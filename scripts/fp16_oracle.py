#!/usr/bin/env python3
"""coremltools oracle for anekit's fp16 compute-precision conversion (`anekit compress --fp16`,
`anekit_compress::fp16`).

Usage (from the repository root, with the venv of scripts/setup-python.sh):

    .venv/bin/python scripts/fp16_oracle.py make    DIR
    .venv/bin/python scripts/fp16_oracle.py convert MODEL.mlpackage [...]
    .venv/bin/python scripts/fp16_oracle.py load    MODEL.mlpackage [...]

make     Writes fp32 source packages built with coremltools' MIL builder and written by
         ct.convert with an empty pass pipeline (so the program is exactly the one built),
         for the corner cases the fixtures lack: edge_ios16 (a constant beyond the fp16
         range, constants at ±65504 and ≥ 1e38, tiny constants that underflow, an input and a
         weight shared by several ops, an output that is also consumed, an int32 → fp32 cast,
         an int32 result), mixed_ios17 and mixed_ios16 (leaky_relu / elu / clamped_relu
         alpha and beta, log epsilon, layer_norm: fp32 parameters from iOS17 on).
         Prints {"ok": true, "made": [paths]}.

convert  Loads each fp32 package into a coremltools MIL program (the milproto loader, as
         `ct.optimize.coreml` does) and runs on it what `ct.convert(...,
         compute_precision=ct.precision.FLOAT16)` runs from `common::add_fp16_cast` on in
         coremltools 9.0's default pipeline (`pass_pipeline.py`), minus the int16 passes:

             common::add_fp16_cast, common::update_output_dtypes,
             common::const_elimination, common::dead_code_elimination,
             common::cast_optimization, common::dead_code_elimination,
             common::const_elimination, common::dead_code_elimination,
             common::cast_optimization, common::dead_code_elimination,
             common::const_elimination

         (`common::add_int16_cast` and `common::guard_negative_gather_indices`, which the
         pipeline interleaves, are a separate int32 → int16 conversion that anekit does not
         do.) Prints the summary below of each result, plus "converted": the number of ops
         add_fp16_cast replaced by an fp16 op.
load     Loads each package (e.g. one anekit wrote) with the same loader and prints its
         summary: a package coremltools cannot load is an error. Only
         common::dead_code_elimination runs first, to drop the unused fp32 `const(0.)` the
         loader makes for each nested block (milproto/load.py `_create_nested_blocks`).

Summary (JSON, one object per package under "results", keyed by function name):
    "ops":     {"<op type>:<output dtypes joined by ','>": count} over every op, nested
               blocks included;
    "casts":   number of cast ops (nested blocks included);
    "inputs":  [[name, dtype]], "outputs": [[name, dtype]] of the function;
    "small_fp16_consts": the fp16 bit patterns of every fp16 const of at most 16 elements,
               as a sorted list of lists.
"""

import json
import os
import sys
from oracle_util import import_coremltools as _ct
from oracle_util import stdout_to_stderr as _stdout_to_stderr

PASSES_AFTER = [
    "common::update_output_dtypes",
    "common::const_elimination",
    "common::dead_code_elimination",
    "common::cast_optimization",
    "common::dead_code_elimination",
    "common::const_elimination",
    "common::dead_code_elimination",
    "common::cast_optimization",
    "common::dead_code_elimination",
    "common::const_elimination",
]


def _program(path):
    ct = _ct()
    from coremltools.converters.mil.frontend.milproto import load as milproto_load

    m = ct.models.MLModel(path, skip_model_load=True)
    spec = m.get_spec()
    return milproto_load.load(spec, spec.specificationVersion, file_weights_dir=m.weights_dir)


def _dtype(var):
    from coremltools.converters.mil.mil import types

    t = var.sym_type
    if types.is_tensor(t):
        return types.builtin_to_string(t.get_primitive())
    if types.is_state(t):
        w = t.wrapped_type()
        return "state<" + types.builtin_to_string(w.get_primitive()) + ">"
    if types.is_list(t):
        return "list"
    if t is None:
        return "none"
    s = types.builtin_to_string(t)
    return s if s is not None else str(t)


def _summary(prog):
    import numpy as np

    out = {}
    for fname, f in prog.functions.items():
        ops = {}
        casts = 0
        small = []

        def walk(block):
            nonlocal casts
            for op in block.operations:
                key = op.op_type + ":" + ",".join(_dtype(v) for v in op.outputs)
                ops[key] = ops.get(key, 0) + 1
                if op.op_type == "cast":
                    casts += 1
                if op.op_type == "const" and _dtype(op.outputs[0]) == "fp16":
                    val = np.asarray(op.outputs[0].val, dtype=np.float16)
                    if val.size <= 16:
                        small.append(val.reshape(-1).view(np.uint16).tolist())
                for b in op.blocks:
                    walk(b)

        walk(f)
        out[fname] = {
            "ops": ops,
            "casts": casts,
            "inputs": [[k, _dtype(v)] for k, v in f.inputs.items()],
            "outputs": [[v.name, _dtype(v)] for v in f.outputs],
            "small_fp16_consts": sorted(small),
        }
    return out


def _make_edge(ct, mb, types, np):
    rng = np.random.default_rng(0)
    f32 = np.float32
    specs = [mb.TensorSpec(shape=(1, 4), dtype=types.fp32), mb.TensorSpec(shape=(1, 4), dtype=types.int32)]

    @mb.program(input_specs=specs, opset_version=ct.target.iOS16)
    def prog(x, i):
        big = mb.const(val=np.array([1e5, 1, 2, 3], f32), name="big")
        inf = mb.const(val=np.array([1e38, -3e38, 65504, -65504], f32), name="inf")
        tiny = mb.const(val=np.array([1e-9, -1e-9, 0, 0.5], f32), name="tiny")
        w = mb.const(val=(rng.standard_normal((4, 4)) * 0.5).astype(f32), name="w")
        a = mb.mul(x=x, y=big, name="a")  # overflow: stays fp32
        b = mb.add(x=a, y=inf, name="b")
        c = mb.sub(x=b, y=tiny, name="c")  # underflow fix
        d = mb.linear(x=x, weight=w, name="d")  # x and w shared
        e = mb.matmul(x=x, y=w, name="e")
        f = mb.cast(x=i, dtype="fp32", name="f")  # int32 -> fp32 -> fp16
        g = mb.mul(x=f, y=d, name="g")  # d: output and consumed
        h = mb.reduce_argmax(x=g, axis=1, name="h")  # int32 result
        return c, d, e, g, h

    return prog, ct.target.iOS16


def _make_mixed(ct, mb, types, np, target):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4), dtype=types.fp32)], opset_version=target)
    def prog(x):
        a = mb.leaky_relu(x=x, alpha=0.1, name="a")
        b = mb.elu(x=a, alpha=1.0, name="b")
        c = mb.clamped_relu(x=b, alpha=0.5, beta=6.0, name="c")
        d = mb.log(x=mb.abs(x=c, name="abs"), epsilon=1e-3, name="d")
        return mb.layer_norm(x=d, axes=[-1], epsilon=1e-5, name="e")

    return prog, target


def cmd_make(out_dir):
    ct = _ct()
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    os.makedirs(out_dir, exist_ok=True)
    made = []
    for name, (prog, target) in [
        ("edge_ios16", _make_edge(ct, mb, types, np)),
        ("mixed_ios17", _make_mixed(ct, mb, types, np, ct.target.iOS17)),
        ("mixed_ios16", _make_mixed(ct, mb, types, np, ct.target.iOS16)),
    ]:
        path = os.path.join(out_dir, name + ".mlpackage")
        with _stdout_to_stderr():
            m = ct.convert(
                prog,
                convert_to="mlprogram",
                minimum_deployment_target=target,
                compute_precision=ct.precision.FLOAT32,
                pass_pipeline=ct.PassPipeline.EMPTY,
                skip_model_load=True,
            )
            m.save(path)
        made.append(path)
    return {"ok": True, "made": made}


def cmd_convert(paths):
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    results = []
    for path in paths:
        with _stdout_to_stderr():
            prog = _program(path)
            fp16 = PASS_REGISTRY["common::add_fp16_cast"]
            converted = 0
            transform = fp16.transform_op

            def counting(op, _transform=transform):
                nonlocal converted
                _transform(op)
                # transform_op removes the op from its block when it replaced it
                if op.enclosing_block is None:
                    converted += 1

            fp16.transform_op = counting
            try:
                fp16(prog)
            finally:
                del fp16.transform_op
            for name in PASSES_AFTER:
                PASS_REGISTRY[name](prog)
        results.append({"path": path, "converted": converted, "functions": _summary(prog)})
    return {"results": results}


def cmd_load(paths):
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    results = []
    for path in paths:
        with _stdout_to_stderr():
            prog = _program(path)
            PASS_REGISTRY["common::dead_code_elimination"](prog)
        results.append({"path": path, "functions": _summary(prog)})
    return {"results": results}


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    try:
        if cmd == "make" and len(argv) == 3:
            res = cmd_make(argv[2])
        elif cmd == "convert":
            res = cmd_convert(argv[2:])
        elif cmd == "load":
            res = cmd_load(argv[2:])
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
