#!/usr/bin/env python3
"""Write the `.mlpackage` cases of the malformed-model corpus (fixtures/malformed/).

    .venv/bin/python scripts/make_malformed.py

The `.mlmodelc` cases of the corpus are hand-written MIL text (`model.mil`) and are not
generated. These packages start from a valid program that coremltools 9.0 converts
(`ct.convert` of a MIL builder program, iOS16, fp16), then break one field of the Model
protobuf the way a buggy writer would, and save the package byte-reproducibly (deterministic
protobuf serialization, fixed manifest identifiers, no conversion date). coremltools is the
writer, so the packages are what a Core ML tool could really produce; only the one field
named by the case is wrong.
"""

import json
import shutil
import uuid
import warnings
from pathlib import Path

warnings.simplefilter("ignore")

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "malformed"


def base_spec():
    @mb.program(
        input_specs=[
            mb.TensorSpec(shape=(1, 10), dtype=types.fp16),
            mb.TensorSpec(shape=(1, 10), dtype=types.fp16),
        ],
        opset_version=ct.target.iOS16,
    )
    def prog(x, y):
        return mb.relu(x=mb.mul(x=x, y=y, name="mul_0"), name="relu_0")

    m = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
        compute_precision=ct.precision.FLOAT16,
        skip_model_load=True,
    )
    spec = m.get_spec()
    spec.description.metadata.Clear()
    return spec


def ops_of(spec):
    fn = spec.mlProgram.functions["main"]
    return fn.block_specializations[fn.opset].operations


def write_package(spec, name):
    """A .mlpackage with the layout coremltools writes (Manifest.json, Data/com.apple.CoreML/
    model.mlmodel, an empty weights folder), identifiers derived from the name."""
    path = OUT / f"{name}.mlpackage"
    if path.exists():
        shutil.rmtree(path)
    data = path / "Data" / "com.apple.CoreML"
    (data / "weights").mkdir(parents=True)
    (data / "weights" / ".gitkeep").touch()
    (data / "model.mlmodel").write_bytes(spec.SerializeToString(deterministic=True))

    def ident(item):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"anekit-malformed:{name}:{item}")).upper()

    model_id, weights_id = ident("model.mlmodel"), ident("weights")
    manifest = {
        "fileFormatVersion": "1.0.0",
        "itemInfoEntries": {
            model_id: {
                "author": "com.apple.CoreML",
                "description": "CoreML Model Specification",
                "name": "model.mlmodel",
                "path": "com.apple.CoreML/model.mlmodel",
            },
            weights_id: {
                "author": "com.apple.CoreML",
                "description": "CoreML Model Weights",
                "name": "weights",
                "path": "com.apple.CoreML/weights",
            },
        },
        "rootModelIdentifier": model_id,
    }
    (path / "Manifest.json").write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def main():
    # An op type no opset has.
    spec = base_spec()
    ops_of(spec)[0].type = "frobnicate"
    write_package(spec, "unknown_op_package")

    # An argument that names a value nobody defines.
    spec = base_spec()
    op = next(o for o in ops_of(spec) if o.type == "relu")
    op.inputs["x"].arguments[0].name = "not_defined_anywhere"
    write_package(spec, "undefined_reference_package")

    # A function output that names a value nobody defines.
    spec = base_spec()
    fn = spec.mlProgram.functions["main"]
    fn.block_specializations[fn.opset].outputs[0] = "no_such_output"
    write_package(spec, "undefined_output_package")


if __name__ == "__main__":
    main()
