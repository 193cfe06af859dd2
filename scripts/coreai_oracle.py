#!/usr/bin/env python3
"""coreai-core as an oracle for anekit's tests (run with the .venv-coreai interpreter).

    coreai_oracle.py print FILE.mlirb            # the module as coreai-core's MLIR prints it
    coreai_oracle.py op-counts MODEL.aimodel     # {op name: count}, nested regions included (JSON)
    coreai_oracle.py run MODEL.aimodel OUT_DIR SPEC.json
        load the asset with coreai-core's Linux runtime and run the calls of SPEC:
        {"function": "main", "calls": [{"x": "in.npy", ...}, ...],
         "dtypes": {"x": "float16"}, "states": {"k_cache": [1, 8, 16], ...}}
        (inputs are cast to "dtypes" where given).
        States start at zero (fp32, or "state_dtype": "float16") and carry over from call to
        call. Writes OUT_DIR/call<i>/<output>.npy and OUT_DIR/call<i>/state_<name>.npy.

Every command prints nothing but its result on stdout; coreai-core's own logging goes to
stderr. Exit status 1 with a message on stderr when coreai-core refuses the file.
"""

import argparse
import asyncio
import collections
import json
import os
import sys
from pathlib import Path

# coreai-core logs to stdout on load ("ODIE [default]: Loading function ..."); keep stdout
# for results only.
_stdout = sys.stdout
sys.stdout = sys.stderr

import numpy as np  # noqa: E402
from coreai._compiler import ir  # noqa: E402
from coreai._compiler.context import Context  # noqa: E402


def cmd_print(args):
    with Context():
        module = ir.Module.parse(Path(args.file).read_bytes())
        _stdout.write(str(module))


def op_counts(path):
    counts = collections.Counter()
    with Context():
        module = ir.Module.parse((Path(path) / "main.mlirb").read_bytes())

        def walk(op):
            counts[op.name] += 1
            for region in op.regions:
                for block in region.blocks:
                    for inner in block.operations:
                        walk(inner.operation)

        for op in module.body.operations:
            walk(op.operation)
    return dict(sorted(counts.items()))


def cmd_op_counts(args):
    _stdout.write(json.dumps(op_counts(args.model)) + "\n")


async def run(args):
    from coreai.authoring import AIModelAsset
    from coreai.runtime import NDArray

    spec = json.loads(Path(args.spec).read_text())
    asset = AIModelAsset.load(Path(args.model).resolve())
    out_dir = Path(args.out)
    dtype = np.float16 if spec.get("state_dtype") == "float16" else np.float32
    state = {k: NDArray(np.zeros(v, dtype)) for k, v in spec.get("states", {}).items()}
    async with asset.executable() as model:
        fn = model.load_function(spec.get("function", "main"))
        names = []
        for i, call in enumerate(spec["calls"]):
            dtypes = spec.get("dtypes", {})
            inputs = {
                k: NDArray(np.ascontiguousarray(np.load(p).astype(dtypes.get(k, None) or np.load(p).dtype)))
                for k, p in call.items()
            }
            outputs = await fn(inputs, state) if state else await fn(inputs)
            d = out_dir / f"call{i}"
            d.mkdir(parents=True, exist_ok=True)
            for k, v in outputs.items():
                np.save(d / f"{k}.npy", np.array(v.numpy()))
            for k, v in state.items():
                np.save(d / f"state_{k}.npy", np.array(v.numpy()))
            names = sorted(outputs)
    _stdout.write(json.dumps(names) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("print")
    p.add_argument("file")
    p = sub.add_parser("op-counts")
    p.add_argument("model")
    p = sub.add_parser("run")
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("spec")
    args = ap.parse_args()
    try:
        if args.cmd == "print":
            cmd_print(args)
        elif args.cmd == "op-counts":
            cmd_op_counts(args)
        else:
            asyncio.run(run(args))
    except Exception as e:  # noqa: BLE001
        print(f"coreai_oracle: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
