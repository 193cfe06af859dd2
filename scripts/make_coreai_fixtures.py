#!/usr/bin/env python3
"""Regenerate fixtures/coreai/: Core AI models (.aimodel) written by Apple's coreai-torch.

    scripts/setup-python.sh --coreai
    .venv-coreai/bin/python scripts/make_coreai_fixtures.py [--only NAME ...]

Small PyTorch modules (the same classes and seeds as scripts/make_fixtures.py, read from
that file without importing coremltools) are exported (`torch.export`, decomposed with
`coreai_torch.get_decomp_table()`), converted by `coreai_torch.TorchConverter` (release
mode) and saved with `AIProgram.save_asset`. For each fixture it saves, under
fixtures/coreai/data/<name>/: the inputs, PyTorch's fp32 outputs (`torch/`) and
coreai-core's own outputs on Linux (`coreai/`, through `AIModelAsset.executable()`), and
writes fixtures/coreai/manifest.json with the op counts of the module that
`coreai._compiler` parses (every op, nested regions included, by full name).

Nothing in the Rust build needs Python; the tests read the manifest and the .npy files.
"""

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import ast  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.simplefilter("ignore")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIX = ROOT / "fixtures" / "coreai"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import coreai_torch  # noqa: E402
from coreai._compiler import ir  # noqa: E402
from coreai._compiler.context import Context as IRContext  # noqa: E402
from coreai.authoring import AIModelAsset  # noqa: E402
from coreai.runtime import NDArray  # noqa: E402

torch.set_num_threads(1)


def log(msg):
    print(f"make_coreai_fixtures: {msg}", file=sys.stderr, flush=True)


def load_fixture_classes():
    """The nn.Module classes of make_fixtures.py, without running that file (it imports
    coremltools, which is not in this venv)."""
    src = (HERE / "make_fixtures.py").read_text()
    tree = ast.parse(src)
    keep = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    ns = {"torch": torch, "nn": nn, "F": F, "np": np}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "make_fixtures.py", "exec"), ns)
    return ns


NETS = load_fixture_classes()


def seed_for(name):
    """Per-network seed (crc32 of the name), as make_fixtures.py does."""
    s = zlib.crc32(name.encode())
    torch.manual_seed(s)
    np.random.seed(s)
    return np.random.default_rng(s)


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def to_torch(a):
    t = torch.from_numpy(np.array(a))
    return t.long() if t.dtype == np.int32 or t.dtype == torch.int32 else t


def run_torch(module, inputs, names):
    with torch.no_grad():
        out = module(*[to_torch(v) for v in inputs.values()])
    if isinstance(out, torch.Tensor):
        out = (out,)
    return {n: o.detach().numpy().astype(np.float32) for n, o in zip(names, out)}


def op_counts(path):
    """Ops of main.mlirb as coreai._compiler parses it: {op name: count}, nested included."""
    counts = collections.Counter()
    with IRContext():
        module = ir.Module.parse((path / "main.mlirb").read_bytes())

        def walk(op):
            counts[op.name] += 1
            for region in op.regions:
                for block in region.blocks:
                    for inner in block.operations:
                        walk(inner.operation)

        for op in module.body.operations:
            walk(op.operation)
    return dict(sorted(counts.items()))


async def run_coreai(path, calls, function="main"):
    """coreai-core's outputs for each call (a dict of inputs); states start at zero and carry
    over from call to call."""
    asset = AIModelAsset.load(path)
    results = []
    async with asset.executable() as model:
        fn = model.load_function(function)
        state = None
        for inputs in calls:
            nd = {k: NDArray(np.ascontiguousarray(v)) for k, v in inputs.items()}
            if state is not None:
                out = await fn(nd, state)
            else:
                out = await fn(nd)
            results.append({k: np.array(v.numpy()) for k, v in out.items()})
    return results


def convert(entries, name):
    """entries: [(module, example_inputs dict, input names, output names, entrypoint, state
    names)] -> saved .aimodel path."""
    conv = coreai_torch.TorchConverter(mode=coreai_torch.TorchConverter.Mode.RELEASE)
    for module, inputs, in_names, out_names, entry, states in entries:
        args = tuple(to_torch(v) for v in inputs.values())
        ep = torch.export.export(module, args).run_decompositions(coreai_torch.get_decomp_table())
        kw = {"input_names": in_names, "output_names": out_names, "entrypoint_name": entry}
        if states:
            kw["state_names"] = states
        conv.add_exported_program(ep, **kw)
    program = conv.to_coreai()
    path = FIX / "models" / f"{name}.aimodel"
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save_asset(path)
    # metadata.json carries the creation time; fix it so regenerations are byte-identical.
    meta = json.loads((path / "metadata.json").read_text())
    meta["creationDate"] = "20260101T000000Z"
    (path / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def save(name, sub, arrays):
    out = {}
    for k, v in arrays.items():
        p = FIX / "data" / name / sub / f"{k}.npy"
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, np.ascontiguousarray(v), allow_pickle=False)
        out[k] = str(p.relative_to(FIX))
    return out


MANIFEST = {}


def record(name, path, description, calls, torch_outs, coreai_outs, function="main", extra=None):
    data = []
    for i, (inp, t, c) in enumerate(zip(calls, torch_outs, coreai_outs)):
        sfx = "" if len(calls) == 1 else f"_step{i}"
        fsfx = "" if function == "main" else f"/{function}"
        data.append({
            "function": function,
            "inputs": save(name, f"inputs{fsfx}{sfx}", inp),
            "torch": save(name, f"torch{fsfx}{sfx}", t),
            "coreai": save(name, f"coreai{fsfx}{sfx}", c),
        })
    dev = max(float(np.max(np.abs(c[k].astype(np.float32) - t[k]))) for t, c in zip(torch_outs, coreai_outs) for k in t)
    entry = MANIFEST.setdefault(name, {
        "path": str(path.relative_to(FIX)),
        "description": description,
        "op_counts": op_counts(path),
        "data": [],
        "coreai_vs_torch_max_abs": 0.0,
    })
    entry["data"] += data
    entry["coreai_vs_torch_max_abs"] = max(entry["coreai_vs_torch_max_abs"], dev)
    if extra:
        entry.update(extra)
    log(f"{name}: {sum(entry['op_counts'].values())} ops, coreai vs torch max abs {dev:.3g}")


def simple(name, module, inputs, out_names, description, extra=None):
    module.eval()
    ref = run_torch(module, inputs, out_names)
    path = convert([(module, inputs, list(inputs), out_names, "main", None)], name)
    got = asyncio.run(run_coreai(path, [inputs]))
    record(name, path, description, [inputs], [ref], got, extra=extra)


def build_convnet():
    rng = seed_for("convnet")
    m = NETS["ConvNet"]()
    with torch.no_grad():
        m.bn.running_mean.copy_(torch.randn(16) * 0.1)
        m.bn.running_var.copy_(torch.rand(16) + 0.5)
        m.bn.weight.copy_(torch.rand(16) + 0.5)
        m.bn.bias.copy_(torch.randn(16) * 0.1)
    simple("convnet", m, {"x": randn(rng, 1, 3, 32, 32)}, ["y"],
           "conv+batchnorm+relu+maxpool+conv+relu+adaptive avgpool+flatten+linear, fp32.")


def build_mlp():
    rng = seed_for("mlp")
    simple("mlp", NETS["MLP"](), {"x": randn(rng, 1, 64)}, ["y"],
           "linear+layernorm+gelu+linear+gelu+linear+softmax, fp32.")


def build_transformer():
    rng = seed_for("transformer_encoder")
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0,
                                       batch_first=True)
    m = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    simple("transformer_encoder", m, {"x": randn(rng, 1, 16, 64)}, ["y"],
           "nn.TransformerEncoder, 2 post-LN layers, d_model 64, 4 heads, ffn 128, seq 16, fp32.")


def build_decoder():
    rng = seed_for("decoder_sdpa")
    D = NETS["Decoder"]
    simple("decoder_sdpa", D(), {"input_ids": rng.integers(0, D.V, size=(1, D.T)).astype(np.int32)},
           ["logits"],
           "int32 token ids [1,16] -> embedding + learned positions -> 2 pre-LN causal blocks with "
           "F.scaled_dot_product_attention(is_causal=True) -> layernorm -> linear head, fp32.")


def build_lstm():
    rng = seed_for("lstm")
    simple("lstm", NETS["LSTMNet"](), {"x": randn(rng, 1, 8, 16)}, ["y"],
           "nn.LSTM(16 -> 32, 1 layer, batch_first), seq 8, linear on the last step, fp32.")


def build_two_io():
    rng = seed_for("two_io")
    simple("two_io", NETS["TwoIO"](), {"a": randn(rng, 1, 8), "b": randn(rng, 1, 4, 6)},
           ["y_sum", "y_prod"], "two inputs, two outputs, broadcasting, mean, sigmoid, fp32.")


def build_stateful():
    rng = seed_for("stateful_kv")
    S = NETS["SlidingKV"]
    m = S().eval()
    steps = [{"x": randn(rng, 1, 1, S.D)} for _ in range(3)]
    path = convert([(m, steps[0], ["x"], ["y"], "main", ["k_cache", "v_cache"])], "stateful_kv")
    m.k_cache = torch.zeros(1, S.W, S.D)
    m.v_cache = torch.zeros(1, S.W, S.D)
    refs = [run_torch(m, s, ["y"]) for s in steps]
    got = asyncio.run(run_coreai(path, steps))
    record("stateful_kv", path, "sliding-window KV cache in two buffers (Core AI states), 3 calls.",
           steps, refs, got)


def build_multifunction():
    rng = seed_for("multihead")
    mh = NETS["MultiHead"]().eval()
    x = randn(rng, 1, 64)
    cls, reg = NETS["Classify"](mh).eval(), NETS["Regress"](mh).eval()
    inputs = {"x": x}
    path = convert([(cls, inputs, ["x"], ["probs"], "classify", None),
                    (reg, inputs, ["x"], ["values"], "regress", None)], "multifunction")
    for fname, mod, out in (("classify", cls, "probs"), ("regress", reg, "values")):
        ref = run_torch(mod, inputs, [out])
        got = asyncio.run(run_coreai(path, [inputs], fname))
        record("multifunction", path, "two entry points sharing a backbone: classify, regress.",
               [inputs], [ref], got, function=fname)


BUILDERS = {
    "convnet": build_convnet,
    "mlp": build_mlp,
    "transformer_encoder": build_transformer,
    "decoder_sdpa": build_decoder,
    "lstm": build_lstm,
    "two_io": build_two_io,
    "stateful_kv": build_stateful,
    "multifunction": build_multifunction,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="build only these fixtures")
    args = ap.parse_args()
    names = args.only or list(BUILDERS)
    failed = {}
    for n in names:
        try:
            BUILDERS[n]()
        except Exception as e:  # noqa: BLE001
            log(f"{n}: FAILED: {type(e).__name__}: {e}")
            failed[n] = f"{type(e).__name__}: {e}"
    (FIX / "manifest.json").write_text(json.dumps({"fixtures": MANIFEST, "failed": failed}, indent=1) + "\n")


if __name__ == "__main__":
    main()
