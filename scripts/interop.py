#!/usr/bin/env python3
"""coremltools oracle for anekit's interop tests.

Usage (from the repository root, after scripts/setup-python.sh):

    .venv/bin/python scripts/interop.py load       PATH
    .venv/bin/python scripts/interop.py op-counts  PATH
    .venv/bin/python scripts/interop.py weights    PATH [--function NAME]
    .venv/bin/python scripts/interop.py describe   PATH

PATH is an `.mlpackage` directory or an `.mlmodel` file (`describe` also accepts a compiled
`.mlmodelc` directory, from its metadata.json). Every command prints one JSON document on
stdout. On failure it prints `{"ok": false, "command": ..., "path": ..., "error": ...}` on
stdout, the error on stderr, and exits with status 1 (2 for usage errors).

Only depends on coremltools and numpy (no torch), so CI can use the small interop venv.
Everything coremltools itself prints (import warnings, progress bars) goes to stderr.

Commands
--------
load       coremltools loads the model (`MLModel(path, skip_model_load=True)`), then the MIL
           proto loader (`coremltools.converters.mil.frontend.milproto.load`) turns the spec
           plus the weights directory into a pymil Program. Reports spec version and, per
           function, the opset, `num_ops` (ops in the protobuf, nested blocks included: the
           sum of `op-counts`) and `pymil_num_ops` (ops of the loaded pymil program; differs:
           the loader turns iOS18 constexpr input values into extra const ops and merges each
           `write_state` + following `read_state` into one `coreml_update_state`).
           NeuralNetwork models: the spec is parsed and the layers counted (there is no MIL
           program to load).
op-counts  `{function: {op_type: count}}` straight from the protobuf: every operation of
           `Program.functions[f].block_specializations[opset]`, recursing into `op.blocks`,
           exactly as written (const ops count; constexpr ops count by their type; a
           write_state counts as write_state). NeuralNetwork models: `{"main": {layer kind:
           count}}` where the layer kind is the name of the set `NeuralNetworkLayer.layer`
           oneof field (e.g. `innerProduct`, `activation`), recursing into loop/branch
           sub-networks.
weights    every `const` / `constexpr_*` op of one function (default: `main`, else the
           default function): op name and type, output dtype/shape, where its value lives
           (blob offset or immediate), constexpr parameters and whether they are written as
           attributes (opset <= iOS17) or inputs (iOS18+), and `sha256_f32`: the sha256 of
           the op's (decompressed) value(s) as float32 little-endian bytes, computed with
           coremltools' own `materialized_val_inference` (what
           `coremltools.optimize.coreml.decompress_weights` uses). NeuralNetwork models: one
           entry per WeightParams field of each layer.
describe   inputs / outputs / states with dtype, shape and shape flexibility, per-function
           descriptions, default function, metadata; what coremltools reports from the spec.
"""

import hashlib
import json
import os
import sys
from collections import Counter
from oracle_util import import_coremltools as _import_coremltools
from oracle_util import stdout_to_stderr as _stdout_to_stderr

SPEC_TO_TARGET = {
    1: "iOS11",
    2: "iOS11.2",
    3: "iOS12",
    4: "iOS13",
    5: "iOS14",
    6: "iOS15",
    7: "iOS16",
    8: "iOS17",
    9: "iOS18",
    10: "iOS26",
}

# FeatureTypes.proto ArrayFeatureType.ArrayDataType -> numpy-style name
ARRAY_DTYPES = {
    65568: "float32",
    65600: "float64",
    131104: "int32",
    65552: "float16",
    131080: "int8",
    0: "invalid",
}


class InteropError(Exception):
    pass


def _model_format(path):
    p = path.rstrip("/")
    if p.endswith(".mlpackage"):
        return "mlpackage"
    if p.endswith(".mlmodelc"):
        return "mlmodelc"
    if p.endswith(".mlmodel"):
        return "mlmodel"
    if os.path.isdir(p) and os.path.exists(os.path.join(p, "Manifest.json")):
        return "mlpackage"
    return "mlmodel"


def open_model(path):
    """Return (MLModel, spec). Raises InteropError with a clear message."""
    if not os.path.exists(path):
        raise InteropError(f"no such file or directory: {path}")
    fmt = _model_format(path)
    if fmt == "mlmodelc":
        raise InteropError(
            f"{path}: compiled .mlmodelc models cannot be loaded by coremltools on Linux "
            "(only `describe` reads their metadata.json)"
        )
    ct = _import_coremltools()
    try:
        model = ct.models.MLModel(path, skip_model_load=True)
    except Exception as e:  # noqa: BLE001
        raise InteropError(f"coremltools could not load {path}: {type(e).__name__}: {e}")
    return model, model.get_spec()


# ----------------------------------------------------------------------------------------
# describe


def _shape_flexibility(arr):
    kind = arr.WhichOneof("ShapeFlexibility")
    if kind is None:
        return None
    default = [int(d) for d in arr.shape]
    if kind == "enumeratedShapes":
        return {
            "kind": "enumerated",
            "shapes": [[int(d) for d in s.shape] for s in arr.enumeratedShapes.shapes],
            "default": default,
        }
    if kind == "shapeRange":
        ranges = []
        for r in arr.shapeRange.sizeRanges:
            upper = int(r.upperBound)
            ranges.append([int(r.lowerBound), None if upper < 0 else upper])
        flex = {"kind": "range", "ranges": ranges, "default": default}
        dims = [i for i, (lo, hi) in enumerate(ranges) if lo != hi]
        if len(dims) == 1:
            d = dims[0]
            flex.update(
                {
                    "dim": d,
                    "lower": ranges[d][0],
                    "upper": ranges[d][1],
                    "default": default[d] if d < len(default) else None,
                    "default_shape": default,
                }
            )
        return flex
    return {"kind": kind}


def feature(fd):
    t = fd.type
    kind = t.WhichOneof("Type")
    out = {"name": fd.name}
    if kind == "multiArrayType":
        arr = t.multiArrayType
        out.update(
            {
                "type": "multiArray",
                "dtype": ARRAY_DTYPES.get(arr.dataType, f"unknown({arr.dataType})"),
                "shape": [int(d) for d in arr.shape],
                "flexible": _shape_flexibility(arr),
            }
        )
    elif kind == "stateType":
        arr = t.stateType.arrayType
        out.update(
            {
                "type": "state",
                "dtype": ARRAY_DTYPES.get(arr.dataType, f"unknown({arr.dataType})"),
                "shape": [int(d) for d in arr.shape],
            }
        )
    elif kind == "imageType":
        img = t.imageType
        from coremltools.proto import FeatureTypes_pb2

        out.update(
            {
                "type": "image",
                "width": int(img.width),
                "height": int(img.height),
                "color_space": FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(img.colorSpace),
            }
        )
    elif kind in ("int64Type", "doubleType", "stringType"):
        out["type"] = kind[: -len("Type")]
    elif kind is not None:
        out["type"] = kind
    if t.isOptional:
        out["optional"] = True
    if fd.shortDescription:
        out["short_description"] = fd.shortDescription
    return out


def describe_spec(spec, path):
    d = spec.description
    res = {
        "ok": True,
        "path": path,
        "format": _model_format(path),
        "spec_version": int(spec.specificationVersion),
        "deployment_target": SPEC_TO_TARGET.get(spec.specificationVersion),
        "model_type": spec.WhichOneof("Type"),
        "is_updatable": bool(spec.isUpdatable),
        "inputs": [feature(f) for f in d.input],
        "outputs": [feature(f) for f in d.output],
        "states": [feature(f) for f in d.state],
        "predicted_feature_name": d.predictedFeatureName or None,
        "predicted_probabilities_name": d.predictedProbabilitiesName or None,
    }
    if len(d.functions) > 0:
        res["functions"] = [
            {
                "name": f.name,
                "inputs": [feature(x) for x in f.input],
                "outputs": [feature(x) for x in f.output],
                "states": [feature(x) for x in f.state],
            }
            for f in d.functions
        ]
        res["default_function"] = d.defaultFunctionName
    else:
        res["functions"] = [
            {"name": "main", "inputs": res["inputs"], "outputs": res["outputs"], "states": res["states"]}
        ]
        res["default_function"] = "main"
    md = d.metadata
    res["metadata"] = {
        "short_description": md.shortDescription,
        "version": md.versionString,
        "author": md.author,
        "license": md.license,
        "user_defined": dict(sorted(md.userDefined.items())),
    }
    if spec.WhichOneof("Type") == "mlProgram":
        prog = spec.mlProgram
        res["program"] = {
            "version": int(prog.version),
            "functions": {
                name: {
                    "opset": f.opset,
                    "inputs": [{"name": i.name, "type": mil_type(i.type)} for i in f.inputs],
                    "outputs": list(f.block_specializations[f.opset].outputs)
                    if f.opset in f.block_specializations
                    else [],
                }
                for name, f in sorted(prog.functions.items())
            },
            "attributes": sorted(prog.attributes.keys()),
        }
    return res


def describe_mlmodelc(path):
    meta_path = os.path.join(path, "metadata.json")
    if not os.path.exists(meta_path):
        raise InteropError(f"{path}: no metadata.json in the compiled model")
    with open(meta_path) as f:
        meta = json.load(f)
    if not isinstance(meta, list) or not meta:
        raise InteropError(f"{meta_path}: expected a non-empty JSON array")
    m = meta[0]

    def schema(items):
        out = []
        for it in items or []:
            shape = it.get("shape")
            try:
                shape = json.loads(shape) if isinstance(shape, str) else shape
            except ValueError:
                pass
            out.append(
                {
                    "name": it.get("name"),
                    "type": it.get("type"),
                    "dtype": {"Float16": "float16", "Float32": "float32", "Int32": "int32", "Double": "float64"}.get(
                        it.get("dataType"), it.get("dataType")
                    ),
                    "shape": shape,
                    "flexible": None if it.get("hasShapeFlexibility", "0") == "0" else {"kind": "unknown"},
                }
            )
        return out

    sv = m.get("specificationVersion")
    return {
        "ok": True,
        "path": path,
        "format": "mlmodelc",
        "spec_version": sv,
        "deployment_target": SPEC_TO_TARGET.get(sv),
        "model_type": m.get("modelType", {}).get("name"),
        "inputs": schema(m.get("inputSchema")),
        "outputs": schema(m.get("outputSchema")),
        "states": schema(m.get("stateSchema")),
        "metadata": {"user_defined": dict(sorted(m.get("userDefinedMetadata", {}).items()))},
        "op_type_histogram": m.get("mlProgramOperationTypeHistogram"),
        "compute_precision": m.get("computePrecision"),
        "source": "metadata.json (coremltools cannot open compiled models)",
    }


def cmd_describe(path):
    if _model_format(path) == "mlmodelc":
        if not os.path.isdir(path):
            raise InteropError(f"no such directory: {path}")
        return describe_mlmodelc(path)
    _, spec = open_model(path)
    return describe_spec(spec, path)


# ----------------------------------------------------------------------------------------
# MIL proto helpers


def _mil_dtype_name(dt):
    from coremltools.proto import MIL_pb2

    name = MIL_pb2.DataType.Name(dt)
    return {
        "FLOAT16": "fp16",
        "FLOAT32": "fp32",
        "FLOAT64": "fp64",
        "BFLOAT16": "bf16",
        "BOOL": "bool",
        "STRING": "string",
    }.get(name, name.lower())


def mil_type(vt):
    """Compact JSON form of a MIL ValueType."""
    kind = vt.WhichOneof("type")
    if kind == "tensorType":
        tt = vt.tensorType
        dims = []
        for d in tt.dimensions:
            if d.WhichOneof("dimension") == "constant":
                dims.append(int(d.constant.size))
            else:
                dims.append(None)
        return {"kind": "tensor", "dtype": _mil_dtype_name(tt.dataType), "rank": int(tt.rank), "shape": dims}
    if kind == "stateType":
        return {"kind": "state", "wrapped": mil_type(vt.stateType.wrappedType)}
    if kind == "listType":
        return {"kind": "list", "element": mil_type(vt.listType.type)}
    if kind == "tupleType":
        return {"kind": "tuple", "types": [mil_type(t) for t in vt.tupleType.types]}
    if kind == "dictionaryType":
        return {
            "kind": "dict",
            "key": mil_type(vt.dictionaryType.keyType),
            "value": mil_type(vt.dictionaryType.valueType),
        }
    return {"kind": kind}


def _walk_ops(block):
    for op in block.operations:
        yield op
        for b in op.blocks:
            yield from _walk_ops(b)


def _function_block(fn, fname):
    if fn.opset not in fn.block_specializations:
        raise InteropError(f"function {fname!r}: opset {fn.opset!r} has no block specialization")
    return fn.block_specializations[fn.opset]


def _nn_of(spec):
    kind = spec.WhichOneof("Type")
    if kind in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
        return getattr(spec, kind)
    return None


def _walk_nn_layers(nn):
    for layer in nn.layers:
        yield layer
        kind = layer.WhichOneof("layer")
        if kind == "loop":
            yield from _walk_nn_layers(layer.loop.conditionNetwork)
            yield from _walk_nn_layers(layer.loop.bodyNetwork)
        elif kind == "branch":
            yield from _walk_nn_layers(layer.branch.ifBranch)
            yield from _walk_nn_layers(layer.branch.elseBranch)


def op_counts_from_spec(spec):
    """{function: {op_type: count}} over every op (nested blocks included), sorted by key."""
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        out = {}
        for fname, fn in sorted(spec.mlProgram.functions.items()):
            c = Counter(op.type for op in _walk_ops(_function_block(fn, fname)))
            out[fname] = dict(sorted(c.items()))
        return out
    nn = _nn_of(spec)
    if nn is not None:
        c = Counter(layer.WhichOneof("layer") for layer in _walk_nn_layers(nn))
        return {"main": dict(sorted(c.items()))}
    if kind in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        raise InteropError("pipeline models are not supported by op-counts")
    return {"main": {kind: 1}}


def op_counts(path):
    _, spec = open_model(path)
    return op_counts_from_spec(spec)


# ----------------------------------------------------------------------------------------
# load


def load_program(model, spec):
    from coremltools.converters.mil.frontend.milproto import load as milproto_load

    weights_dir = model.weights_dir if spec.WhichOneof("Type") == "mlProgram" else ""
    return milproto_load.load(spec, spec.specificationVersion, file_weights_dir=weights_dir or "")


def _count_pymil_ops(block):
    n = 0
    for op in block.operations:
        n += 1
        for b in op.blocks:
            n += _count_pymil_ops(b)
    return n


def cmd_load(path):
    model, spec = open_model(path)
    desc = describe_spec(spec, path)
    res = {
        "ok": True,
        "path": path,
        "format": desc["format"],
        "spec_version": desc["spec_version"],
        "model_type": desc["model_type"],
        "functions": {},
        "inputs": desc["inputs"],
        "outputs": desc["outputs"],
        "states": desc["states"],
    }
    if spec.WhichOneof("Type") == "mlProgram":
        try:
            prog = load_program(model, spec)
        except Exception as e:  # noqa: BLE001
            raise InteropError(f"the coremltools MIL loader rejected {path}: {type(e).__name__}: {e}")
        for fname, fn in sorted(spec.mlProgram.functions.items()):
            pf = prog.functions[fname]
            res["functions"][fname] = {
                "opset": fn.opset,
                "num_ops": sum(1 for _ in _walk_ops(_function_block(fn, fname))),
                "pymil_opset": getattr(pf.opset_version, "name", None),
                "pymil_num_ops": _count_pymil_ops(pf),
                "inputs": sorted(pf.inputs.keys()),
                "outputs": [v.name for v in pf.outputs],
            }
        res["default_function"] = desc["default_function"]
    else:
        nn = _nn_of(spec)
        if nn is None:
            raise InteropError(f"{path}: model type {spec.WhichOneof('Type')!r} is neither an ML Program nor a neural network")
        n = sum(1 for _ in _walk_nn_layers(nn))
        res["functions"]["main"] = {"opset": None, "num_ops": n}
        res["default_function"] = "main"
    return res


# ----------------------------------------------------------------------------------------
# weights


def _sha256_f32(val):
    import numpy as np

    if val is None:
        return None
    a = np.asarray(val)
    if a.dtype.kind not in "fiub":
        return None
    return hashlib.sha256(np.ascontiguousarray(a.astype("<f4")).tobytes()).hexdigest()


def _value_info(v):
    """Where a MIL Value lives: blob or immediate, with dtype and shape."""
    info = {"type": mil_type(v.type)}
    which = v.WhichOneof("value")
    if which == "blobFileValue":
        info["storage"] = "blob"
        info["blob_file"] = v.blobFileValue.fileName
        info["blob_offset"] = int(v.blobFileValue.offset)
    else:
        info["storage"] = "immediate"
    return info


def _pymil_vars(prog):
    out = {}

    def walk(block):
        for op in block.operations:
            for o in op.outputs:
                out[o.name] = o
            for b in op.blocks:
                walk(b)

    for fn in prog.functions.values():
        walk(fn)
    return out


def cmd_weights(path, function=None):
    model, spec = open_model(path)
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        nn = _nn_of(spec)
        if nn is None:
            raise InteropError(f"{path}: model type {kind!r} has no weights to list")
        return _nn_weights(path, nn)

    fns = spec.mlProgram.functions
    if function is None:
        function = "main" if "main" in fns else spec.description.defaultFunctionName
    if function not in fns:
        raise InteropError(f"{path}: no function {function!r} (have {sorted(fns.keys())})")
    fn = fns[function]
    block = _function_block(fn, function)
    try:
        prog = load_program(model, spec)
    except Exception as e:  # noqa: BLE001
        raise InteropError(f"the coremltools MIL loader rejected {path}: {type(e).__name__}: {e}")
    pvars = _pymil_vars(prog)

    entries = []
    consumers = Counter()
    constexpr_consumers = Counter()
    for op in _walk_ops(block):
        for arg in op.inputs.values():
            for b in arg.arguments:
                if b.WhichOneof("binding") == "name":
                    consumers[b.name] += 1
                    if op.type.startswith("constexpr_"):
                        constexpr_consumers[b.name] += 1

    for op in _walk_ops(block):
        if op.type != "const" and not op.type.startswith("constexpr_"):
            continue
        name = op.attributes["name"].immediateValue.tensor.strings.values[0] if "name" in op.attributes else None
        e = {"name": name, "op": op.type, "outputs": []}
        if op.type == "const":
            e["value"] = _value_info(op.attributes["val"])
        else:
            params = {}
            for pname, v in sorted(op.attributes.items()):
                if pname == "name":
                    continue
                params[pname] = dict(form="attribute", **_value_info(v))
            for pname, arg in sorted(op.inputs.items()):
                bindings = []
                for b in arg.arguments:
                    if b.WhichOneof("binding") == "name":
                        bindings.append({"ref": b.name})
                    else:
                        bindings.append(_value_info(b.value))
                params[pname] = dict(form="input", **(bindings[0] if len(bindings) == 1 else {"bindings": bindings}))
            e["params"] = params
            e["param_form"] = (
                "inputs" if op.inputs and not [p for p in op.attributes if p != "name"] else
                "attributes" if not op.inputs else "mixed"
            )
            # pymil computes the decompressed value the same way decompress_weights does
            pv = pvars.get(op.outputs[0].name)
            vals = None
            if pv is not None:
                try:
                    vals = pv.op.materialized_val_inference()
                except Exception as ex:  # noqa: BLE001
                    e["materialize_error"] = f"{type(ex).__name__}: {ex}"
            if vals is not None and not isinstance(vals, (list, tuple)):
                vals = [vals]
        for i, o in enumerate(op.outputs):
            oe = {"name": o.name, "type": mil_type(o.type)}
            if op.type == "const":
                pv = pvars.get(o.name)
                oe["sha256_f32"] = _sha256_f32(pv.val) if pv is not None else None
            else:
                oe["sha256_f32"] = _sha256_f32(vals[i]) if vals is not None and i < len(vals) else None
                # final = consumed by a non-constexpr op (the dense weight the network uses)
                oe["final"] = consumers[o.name] > constexpr_consumers[o.name]
            e["outputs"].append(oe)
        entries.append(e)
    n_constexpr = sum(1 for e in entries if e["op"] != "const")
    return {
        "ok": True,
        "path": path,
        "function": function,
        "opset": fn.opset,
        "num_const": len(entries) - n_constexpr,
        "num_constexpr": n_constexpr,
        "weights": entries,
    }


def _nn_weights(path, nn):
    import numpy as np
    from coremltools.proto import NeuralNetwork_pb2

    entries = []
    for layer in _walk_nn_layers(nn):
        kind = layer.WhichOneof("layer")
        params = getattr(layer, kind)
        for fdesc, val in params.ListFields():
            if not isinstance(val, NeuralNetwork_pb2.WeightParams):
                continue
            if len(val.floatValue):
                arr, dt = np.asarray(val.floatValue, dtype="<f4"), "fp32"
            elif len(val.float16Value):
                arr, dt = np.frombuffer(val.float16Value, dtype="<f2"), "fp16"
            elif len(val.rawValue):
                arr, dt = np.frombuffer(val.rawValue, dtype=np.uint8), "raw"
            else:
                arr, dt = np.zeros(0, dtype="<f4"), "empty"
            entries.append(
                {
                    "name": f"{layer.name}.{fdesc.name}",
                    "op": kind,
                    "dtype": dt,
                    "count": int(arr.size),
                    "quantized": val.HasField("quantization"),
                    "sha256_f32": _sha256_f32(arr),
                }
            )
    return {"ok": True, "path": path, "function": "main", "opset": None, "weights": entries}


# ----------------------------------------------------------------------------------------

COMMANDS = {
    "load": lambda a: cmd_load(a.path),
    "op-counts": lambda a: op_counts(a.path),
    "weights": lambda a: cmd_weights(a.path, a.function),
    "describe": lambda a: cmd_describe(a.path),
}


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(
        prog="interop.py", description="coremltools oracle for anekit (JSON on stdout)"
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for name, help_ in [
        ("load", "load with coremltools + the MIL proto loader"),
        ("op-counts", "op type histogram per function, from the protobuf"),
        ("weights", "const / constexpr ops with decompressed-value hashes"),
        ("describe", "inputs, outputs, states, flexible shapes, metadata"),
    ]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("path")
        if name == "weights":
            p.add_argument("--function", default=None, help="function name (default: main / default function)")
    args = ap.parse_args(argv)

    with _stdout_to_stderr() as real_stdout:
        try:
            result = COMMANDS[args.command](args)
            rc = 0
        except InteropError as e:
            result, rc = {"ok": False, "command": args.command, "path": args.path, "error": str(e)}, 1
        except Exception as e:  # noqa: BLE001  (unexpected: still JSON, still non-zero)
            result = {
                "ok": False,
                "command": args.command,
                "path": args.path,
                "error": f"{type(e).__name__}: {e}",
            }
            rc = 1
        if rc:
            print(f"interop.py {args.command}: error: {result['error']}", file=sys.stderr)
        data = (json.dumps(result, indent=1) + "\n").encode()
        while data:
            data = data[os.write(real_stdout, data):]
    return rc


if __name__ == "__main__":
    # The oracle needs no ML framework. Hide any that are installed (the fixtures venv has
    # torch and scikit-learn): coremltools imports them eagerly, which costs seconds per call,
    # and hiding them keeps both venvs behaving the same.
    for _m in ("torch", "torchvision", "torchaudio", "torchao", "executorch", "tensorflow", "sklearn"):
        sys.modules.setdefault(_m, None)
    sys.exit(main())
