#!/usr/bin/env python3
"""coreai-core as an oracle for anekit's tests (run with the .venv-coreai interpreter).

    coreai_oracle.py print FILE.mlirb            # the module as coreai-core's MLIR prints it
    coreai_oracle.py op-counts MODEL.aimodel     # {op name: count}, nested regions included (JSON)
    coreai_oracle.py run MODEL.aimodel OUT_DIR SPEC.json
        load the asset with coreai-core's Linux runtime and run the calls of SPEC:
        {"function": "main", "calls": [{"x": "in.npy", ...}, ...],
         "dtypes": {"x": "float16"}, "states": {"k_cache": [1, 8, 16], ...}}
        (inputs are cast to "dtypes" where given).
    coreai_oracle.py bench MODEL.aimodel OUT_DIR --input NAME=FILE.npy ... [--function F]
            [--runs N] [--warmup N] [--serve]
        time coreai-core's Linux CPU runtime on one function: load, WARMUP untimed calls,
        RUNS timed calls (wall time around each awaited call); writes OUT_DIR/<output>.npy
        and prints {"load_ms", "ms": [...], "outputs": [...], "cpus": [...]} (cpus: the CPUs
        this process may run on, as `taskset` left them). With --serve: prints
        {"load_ms", "cpus"} after the warm-up, then times one call per "run" line read on
        stdin (answering its milliseconds) until "quit"; the outputs are written at the end.
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


async def bench(args):
    import time

    from coreai.authoring import AIModelAsset
    from coreai.runtime import NDArray

    inputs = {}
    for spec in args.input:
        name, path = spec.split("=", 1)
        inputs[name] = NDArray(np.ascontiguousarray(np.load(path)))
    t = time.perf_counter()
    asset = AIModelAsset.load(Path(args.model).resolve())
    async with asset.executable() as model:
        fn = model.load_function(args.function)
        load_ms = (time.perf_counter() - t) * 1e3
        out = None
        for _ in range(args.warmup):
            out = await fn(inputs)
        info = {"load_ms": load_ms, "cpus": sorted(os.sched_getaffinity(0))}
        times = []

        async def once():
            t = time.perf_counter()
            r = await fn(inputs)
            times.append((time.perf_counter() - t) * 1e3)
            return r

        if args.serve:
            # One line per request on stdin: "run" answers the call's milliseconds,
            # "quit" (or the end of input) stops.
            _stdout.write(json.dumps(info) + "\n")
            _stdout.flush()
            for line in sys.stdin:
                if line.strip() != "run":
                    break
                out = await once()
                _stdout.write(f"{times[-1]}\n")
                _stdout.flush()
        else:
            for _ in range(args.runs):
                out = await once()
        if out is None:
            out = await fn(inputs)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, v in out.items():
        np.save(out_dir / f"{k}.npy", np.array(v.numpy()))
    if not args.serve:
        info.update({"ms": times, "outputs": sorted(out)})
        _stdout.write(json.dumps(info) + "\n")


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
    p = sub.add_parser("bench")
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    p.add_argument("--function", default="main")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--serve", action="store_true")
    args = ap.parse_args()
    try:
        if args.cmd == "print":
            cmd_print(args)
        elif args.cmd == "op-counts":
            cmd_op_counts(args)
        elif args.cmd == "bench":
            asyncio.run(bench(args))
        else:
            asyncio.run(run(args))
    except Exception as e:  # noqa: BLE001
        print(f"coreai_oracle: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
