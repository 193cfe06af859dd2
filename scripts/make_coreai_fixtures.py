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


async def run_coreai(path, calls, function="main", states=None):
    """coreai-core's outputs for each call (a dict of inputs). `states`: {name: shape}; they
    start at zero and carry over from call to call (coreai-core updates them in place).
    Returns ([outputs per call], [states after each call])."""
    asset = AIModelAsset.load(path)
    results, after = [], []
    async with asset.executable() as model:
        fn = model.load_function(function)
        state = {k: NDArray(np.zeros(v, np.float32)) for k, v in (states or {}).items()}
        for inputs in calls:
            nd = {k: NDArray(np.ascontiguousarray(v)) for k, v in inputs.items()}
            out = await fn(nd, state) if state else await fn(nd)
            results.append({k: np.array(v.numpy()) for k, v in out.items()})
            after.append({k: np.array(v.numpy()) for k, v in state.items()})
    return results, after


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
    got, _ = asyncio.run(run_coreai(path, [inputs]))
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
    refs, torch_states = [], []
    for s in steps:
        refs.append(run_torch(m, s, ["y"]))
        torch_states.append({"k_cache": m.k_cache.numpy().copy(), "v_cache": m.v_cache.numpy().copy()})
    shapes = {"k_cache": (1, S.W, S.D), "v_cache": (1, S.W, S.D)}
    got, after = asyncio.run(run_coreai(path, steps, states=shapes))
    record("stateful_kv", path,
           "sliding-window KV cache in two registered buffers (Core AI states, handle_v1 "
           "arguments), 3 calls from zero states; data[i] holds call i and the states after it.",
           steps, refs, got)
    for i, (st, tst) in enumerate(zip(after, torch_states)):
        MANIFEST["stateful_kv"]["data"][i]["states_after"] = save("stateful_kv", f"states_after_step{i}", st)
        MANIFEST["stateful_kv"]["data"][i]["torch_states_after"] = save("stateful_kv", f"torch_states_after_step{i}", tst)
    MANIFEST["stateful_kv"]["states"] = {k: list(v) for k, v in shapes.items()}


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
        got, _ = asyncio.run(run_coreai(path, [inputs], fname))
        record("multifunction", path, "two entry points sharing a backbone: classify, regress.",
               [inputs], [ref], got, function=fname)


# =========================================================================================
# The op zoo: one small function per PyTorch op pattern, all in one multifunction asset
# (fixtures/coreai/models/ops.aimodel), so each aicode op coreai-torch emits is exercised on
# its own. Cases coreai-torch 0.4.3 cannot convert (elu, var/std, argmin, sort, cumprod,
# isnan, bitwise xor with a scalar) are left out.

class L(nn.Module):
    """A one-op module: forward is `f(self, *inputs)`; `mods` are its submodules."""

    def __init__(s, f, mods=None):
        super().__init__(); s.f = f
        if mods:
            for k, v in mods.items(): setattr(s, k, v)
    def forward(s, *a): return s.f(s, *a)

def C(f, **mods): return lambda: L(f, mods)

X4 = (1, 3, 8, 8)
X2 = (2, 6)
X3 = (2, 4, 6)
# name: (factory, [input shapes or ("int", shape, hi) / ("bool", shape)])
CASES = {
    "add": (C(lambda s, a, b: a + b), [X3, X3]),
    "sub_bcast": (C(lambda s, a, b: a - b), [X3, (6,)]),
    "mul_scalar": (C(lambda s, a: a * 2.5), [X3]),
    "div": (C(lambda s, a, b: a / (b.abs() + 1)), [X3, X3]),
    "pow": (C(lambda s, a: a.abs() ** 1.7), [X3]),
    "maximum": (C(lambda s, a, b: torch.maximum(a, b)), [X3, X3]),
    "minimum": (C(lambda s, a, b: torch.minimum(a, b)), [X3, X3]),
    "floor_divide": (C(lambda s, a, b: torch.floor_divide(a, b.abs() + 0.5)), [X3, X3]),
    "remainder": (C(lambda s, a, b: torch.remainder(a, b.abs() + 0.5)), [X3, X3]),
    "relu": (C(lambda s, a: F.relu(a)), [X3]),
    "relu6": (C(lambda s, a: F.relu6(a * 4)), [X3]),
    "leaky_relu": (C(lambda s, a: F.leaky_relu(a, 0.1)), [X3]),
    "gelu": (C(lambda s, a: F.gelu(a)), [X3]),
    "gelu_tanh": (C(lambda s, a: F.gelu(a, approximate="tanh")), [X3]),
    "silu": (C(lambda s, a: F.silu(a)), [X3]),
    "sigmoid": (C(lambda s, a: torch.sigmoid(a)), [X3]),
    "tanh": (C(lambda s, a: torch.tanh(a)), [X3]),
    "softplus": (C(lambda s, a: F.softplus(a)), [X3]),
    "hardswish": (C(lambda s, a: F.hardswish(a)), [X3]),
    "hardsigmoid": (C(lambda s, a: F.hardsigmoid(a)), [X3]),
    "mish": (C(lambda s, a: F.mish(a)), [X3]),
    "exp": (C(lambda s, a: torch.exp(a)), [X3]),
    "log": (C(lambda s, a: torch.log(a.abs() + 1)), [X3]),
    "sqrt": (C(lambda s, a: torch.sqrt(a.abs())), [X3]),
    "rsqrt": (C(lambda s, a: torch.rsqrt(a.abs() + 1)), [X3]),
    "abs": (C(lambda s, a: torch.abs(a)), [X3]),
    "neg": (C(lambda s, a: -a), [X3]),
    "sign": (C(lambda s, a: torch.sign(a)), [X3]),
    "floor": (C(lambda s, a: torch.floor(a * 3)), [X3]),
    "ceil": (C(lambda s, a: torch.ceil(a * 3)), [X3]),
    "round": (C(lambda s, a: torch.round(a * 3)), [X3]),
    "sin": (C(lambda s, a: torch.sin(a)), [X3]),
    "cos": (C(lambda s, a: torch.cos(a)), [X3]),
    "erf": (C(lambda s, a: torch.erf(a)), [X3]),
    "reciprocal": (C(lambda s, a: torch.reciprocal(a.abs() + 1)), [X3]),
    "clamp": (C(lambda s, a: torch.clamp(a, -0.5, 0.7)), [X3]),
    "where": (C(lambda s, a, b: torch.where(a > b, a, b * 2)), [X3, X3]),
    "compare": (C(lambda s, a, b: ((a > b) & (a < 1.0) | (a == b)).float() + (a != b).float() + (a >= 0).float() + (a <= 0.5).float()), [X3, X3]),
    "logical_not": (C(lambda s, a: (~(a > 0)).float()), [X3]),
    "sum": (C(lambda s, a: a.sum(dim=1)), [X3]),
    "sum_keep": (C(lambda s, a: a.sum(dim=(1, 2), keepdim=True)), [X3]),
    "mean": (C(lambda s, a: a.mean(dim=-1)), [X3]),
    "amax": (C(lambda s, a: a.amax(dim=1)), [X3]),
    "amin": (C(lambda s, a: a.amin(dim=-1, keepdim=True)), [X3]),
    "prod": (C(lambda s, a: a.prod(dim=1)), [X3]),
    "argmax": (C(lambda s, a: a.argmax(dim=-1).float()), [X3]),
    "logsumexp": (C(lambda s, a: torch.logsumexp(a, dim=-1)), [X3]),
    "softmax": (C(lambda s, a: torch.softmax(a, dim=1)), [X3]),
    "log_softmax": (C(lambda s, a: torch.log_softmax(a, dim=-1)), [X3]),
    "cumsum": (C(lambda s, a: torch.cumsum(a, dim=1)), [X3]),
    "matmul": (C(lambda s, a, b: a @ b), [(2, 4, 6), (2, 6, 5)]),
    "matmul_bcast": (C(lambda s, a, b: a @ b), [(2, 4, 6), (6, 5)]),
    "bmm_transpose": (C(lambda s, a, b: a @ b.transpose(-1, -2)), [(2, 4, 6), (2, 5, 6)]),
    "linear": (C(lambda s, a: s.l(a), l=nn.Linear(6, 5)), [X3]),
    "linear_nobias": (C(lambda s, a: s.l(a), l=nn.Linear(6, 5, bias=False)), [X3]),
    "conv2d": (C(lambda s, a: s.c(a), c=nn.Conv2d(3, 4, 3, padding=1)), [X4]),
    "conv2d_stride": (C(lambda s, a: s.c(a), c=nn.Conv2d(3, 4, 3, stride=2)), [X4]),
    "conv2d_dilated": (C(lambda s, a: s.c(a), c=nn.Conv2d(3, 4, 3, padding=2, dilation=2, bias=False)), [X4]),
    "conv2d_groups": (C(lambda s, a: s.c(a), c=nn.Conv2d(4, 8, 3, padding=1, groups=2)), [(1, 4, 8, 8)]),
    "conv2d_depthwise": (C(lambda s, a: s.c(a), c=nn.Conv2d(4, 4, 3, padding=1, groups=4)), [(1, 4, 8, 8)]),
    "conv1d": (C(lambda s, a: s.c(a), c=nn.Conv1d(3, 4, 3, padding=1)), [(1, 3, 10)]),
    "conv_transpose2d": (C(lambda s, a: s.c(a), c=nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)), [X4]),
    "conv3d": (C(lambda s, a: s.c(a), c=nn.Conv3d(2, 3, 3, padding=1)), [(1, 2, 4, 5, 5)]),
    "max_pool2d": (C(lambda s, a: F.max_pool2d(a, 2)), [X4]),
    "max_pool2d_pad": (C(lambda s, a: F.max_pool2d(a, 3, stride=2, padding=1)), [X4]),
    "avg_pool2d": (C(lambda s, a: F.avg_pool2d(a, 2)), [X4]),
    "avg_pool2d_pad": (C(lambda s, a: F.avg_pool2d(a, 3, stride=2, padding=1, count_include_pad=False)), [X4]),
    "adaptive_avg_pool": (C(lambda s, a: F.adaptive_avg_pool2d(a, 1)), [X4]),
    "batch_norm": (C(lambda s, a: s.b(a), b=nn.BatchNorm2d(3).eval()), [X4]),
    "layer_norm": (C(lambda s, a: s.n(a), n=nn.LayerNorm(6)), [X3]),
    "group_norm": (C(lambda s, a: s.n(a), n=nn.GroupNorm(2, 4)), [(1, 4, 6, 6)]),
    "instance_norm": (C(lambda s, a: s.n(a), n=nn.InstanceNorm2d(3, affine=True)), [X4]),
    "rms_norm": (C(lambda s, a: s.n(a), n=nn.RMSNorm(6)), [X3]),
    "reshape": (C(lambda s, a: a.reshape(4, 12)), [X3]),
    "flatten": (C(lambda s, a: torch.flatten(a, 1)), [X4]),
    "permute": (C(lambda s, a: a.permute(2, 0, 1)), [X3]),
    "transpose": (C(lambda s, a: a.transpose(0, 1).contiguous()), [X3]),
    "squeeze_unsqueeze": (C(lambda s, a: a.unsqueeze(1).squeeze(0)), [(1, 4, 6)]),
    "cat": (C(lambda s, a, b: torch.cat([a, b, a], dim=1)), [X3, X3]),
    "stack": (C(lambda s, a, b: torch.stack([a, b], dim=0)), [X3, X3]),
    "split": (C(lambda s, a: torch.split(a, [2, 4], dim=-1)[1] * 2), [X3]),
    "chunk": (C(lambda s, a: torch.chunk(a, 2, dim=1)[0]), [X3]),
    "slice": (C(lambda s, a: a[:, 1:3, ::2]), [X3]),
    "slice_neg": (C(lambda s, a: a[..., -2:]), [X3]),
    "select": (C(lambda s, a: a[:, 2]), [X3]),
    "expand": (C(lambda s, a: a.expand(3, 4, 6) + 0), [(1, 4, 6)]),
    "repeat": (C(lambda s, a: a.repeat(1, 2, 1)), [X3]),
    "flip": (C(lambda s, a: torch.flip(a, [1])), [X3]),
    "roll": (C(lambda s, a: torch.roll(a, 2, 2)), [X3]),
    "pad_constant": (C(lambda s, a: F.pad(a, (1, 2, 0, 1), value=0.5)), [X4]),
    "pad_reflect": (C(lambda s, a: F.pad(a, (1, 1, 2, 2), mode="reflect")), [X4]),
    "pad_replicate": (C(lambda s, a: F.pad(a, (1, 1, 2, 2), mode="replicate")), [X4]),
    "upsample_nearest": (C(lambda s, a: F.interpolate(a, scale_factor=2, mode="nearest")), [X4]),
    "upsample_bilinear": (C(lambda s, a: F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=False)), [X4]),
    "upsample_bilinear_ac": (C(lambda s, a: F.interpolate(a, size=(5, 7), mode="bilinear", align_corners=True)), [X4]),
    "pixel_shuffle": (C(lambda s, a: F.pixel_shuffle(a, 2)), [(1, 8, 3, 3)]),
    "embedding": (C(lambda s, i: s.e(i), e=nn.Embedding(10, 6)), [("int", (2, 5), 10)]),
    "gather": (C(lambda s, a, i: torch.gather(a, 2, i)), [X3, ("int", (2, 4, 3), 6)]),
    "index_select": (C(lambda s, a, i: torch.index_select(a, 1, i)), [X3, ("int", (3,), 4)]),
    "topk": (C(lambda s, a: torch.topk(a, 3, dim=-1).values), [X3]),
    "tril": (C(lambda s, a: torch.tril(a)), [(4, 6)]),
    "triu": (C(lambda s, a: torch.triu(a, 1)), [(4, 6)]),
    "cast_int": (C(lambda s, a: (a * 4).to(torch.int32).to(torch.float32)), [X3]),
    "cast_half": (C(lambda s, a: (a.half() * 3).float()), [X3]),
    "int_arith": (C(lambda s, i, j: (i * 3 + j - 2).float()), [("int", X3, 10), ("int", X3, 10)]),
    "masked_fill": (C(lambda s, a: a.masked_fill(a < 0, -1.5)), [X3]),
    "arange": (C(lambda s, a: a + torch.arange(6, dtype=torch.float32)), [X3]),
    "zeros_like": (C(lambda s, a: torch.zeros_like(a) + torch.ones_like(a) * 2 + a), [X3]),
    "einsum": (C(lambda s, a, b: torch.einsum("bij,bjk->bik", a, b)), [(2, 4, 6), (2, 6, 5)]),
    "sdpa": (C(lambda s, q, k, v: F.scaled_dot_product_attention(q, k, v)), [(1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)]),
    "sdpa_mask": (C(lambda s, q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)), [(1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8), (4, 4)]),
    "mha": (C(lambda s, a: s.m(a, a, a, need_weights=False)[0], m=nn.MultiheadAttention(8, 2, batch_first=True)), [(1, 5, 8)]),
    "gru": (C(lambda s, a: s.g(a)[0], g=nn.GRU(6, 5, batch_first=True)), [(1, 4, 6)]),
    "lstm": (C(lambda s, a: s.g(a)[0], g=nn.LSTM(6, 5, batch_first=True)), [(1, 4, 6)]),
    "norm": (C(lambda s, a: torch.linalg.vector_norm(a, dim=-1)), [X3]),
    "normalize": (C(lambda s, a: F.normalize(a, dim=-1)), [X3]),
    "atan2": (C(lambda s, a, b: torch.atan2(a, b)), [X3, X3]),
    "sinh_cosh": (C(lambda s, a: torch.sinh(a) + torch.cosh(a) + torch.asinh(a) + torch.atan(a)), [X3]),
    "log_ops": (C(lambda s, a: torch.log2(a.abs() + 1) + torch.log10(a.abs() + 1) + torch.log1p(a.abs()) + torch.expm1(a)), [X3]),
    "scatter": (C(lambda s, a, i, b: torch.scatter(a, 1, i, b)), [X3, ("int", (2, 2, 6), 4), (2, 2, 6)]),
    "index_put": (C(lambda s, a, b: torch.index_put(a, (torch.tensor([0, 2]),), b)), [(4, 6), (2, 6)]),
    "one_hot": (C(lambda s, i: F.one_hot(i, 5).float()), [("int", (2, 3), 5)]),
    "clamp_min": (C(lambda s, a: a.clamp_min(0.1)), [X3]),
    "unfold": (C(lambda s, a: F.unfold(a, 2)), [X4]),
    "prelu": (C(lambda s, a: s.p(a), p=nn.PReLU(3)), [X4]),
    "max_dim": (C(lambda s, a: a.max(dim=1).values), [X3]),
    "any_all": (C(lambda s, a: (a > 0).any(dim=1).float() + (a > -2).all(dim=1).float()), [X3]),
    "mean_all": (C(lambda s, a: a.mean()), [X3]),
    "bf16": (C(lambda s, a: (a.to(torch.bfloat16) * 2).float()), [X3]),
}


def zoo_inputs(name, specs):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    out = {}
    for i, s in enumerate(specs):
        if isinstance(s, tuple) and s and s[0] == "int":
            out[f"x{i}"] = rng.integers(0, s[2], size=s[1]).astype(np.int32)
        else:
            out[f"x{i}"] = rng.standard_normal(s).astype(np.float32)
    return out


def build_ops():
    entries, data = [], {}
    for name, (factory, specs) in CASES.items():
        torch.manual_seed(zlib.crc32(name.encode()))
        m = factory().eval()
        inputs = zoo_inputs(name, specs)
        data[name] = (inputs, run_torch(m, inputs, ["y"]))
        entries.append((m, inputs, list(inputs), ["y"], name, None))
    path = convert(entries, "ops")
    for name in CASES:
        inputs, ref = data[name]
        got, _ = asyncio.run(run_coreai(path, [inputs], name))
        record("ops", path, "one function per op pattern (the op zoo), fp32.", [inputs], [ref], got,
               function=name)


# =========================================================================================
# Control flow: torch.cond and torch.while_loop, which coreai-torch converts to
# coreai.if / coreai.while (saved as aicode.controlflow.if_v1 / while_v1 with
# condition_v1 and yield_v1 terminators). Each function is called on inputs that take
# each branch / a different number of iterations.

_while_loop = torch._higher_order_ops.while_loop


class CondLinear(nn.Module):
    """torch.cond on the sign of x.sum(): a linear layer (weights captured by the branch)
    plus y, else sin(x - y)."""

    def __init__(s):
        super().__init__()
        s.l = nn.Linear(3, 3)

    def forward(s, x, y):
        return torch.cond(x.sum() > 0, lambda x, y: s.l(x) + y, lambda x, y: (x - y).sin(), (x, y))


class CondTwo(nn.Module):
    """torch.cond with two results, and a result used after it."""

    def forward(s, x):
        def t(x):
            return (x * 2, x.sum(dim=-1))

        def f(x):
            return (x.exp(), x.amax(dim=-1))

        a, b = torch.cond(x.mean() < 0.1, t, f, (x,))
        return a + 1, b


class WhileCounter(nn.Module):
    """torch.while_loop counting to 5: a = a * 1.5 + 0.1 each time; returns a and the count."""

    def forward(s, x):
        def c(i, a):
            return i < 5

        def b(i, a):
            return (i + 1, a * 1.5 + 0.1)

        i, a = _while_loop(c, b, (torch.tensor(0), x))
        return a, i.float()


class WhileData(nn.Module):
    """torch.while_loop halving a until sum(|a|) <= 2 (a data-dependent number of steps)."""

    def forward(s, x):
        def c(i, a):
            return a.abs().sum() > 2.0

        def b(i, a):
            return (i + 1, a * 0.5)

        i, a = _while_loop(c, b, (torch.tensor(0), x))
        return a, i.float()


def build_control_flow():
    rng = seed_for("control_flow")
    x23 = lambda scale=1.0: randn(rng, 2, 3, scale=scale)  # noqa: E731
    pos = np.abs(x23())
    neg = -np.abs(x23())
    cases = [
        # (function, module, [calls], output names)
        ("cond", CondLinear(), [{"x": pos, "y": x23()}, {"x": neg, "y": x23()}], ["z"]),
        ("cond_two_results", CondTwo(), [{"x": neg}, {"x": pos + 0.5}], ["a", "b"]),
        ("while_counter", WhileCounter(), [{"x": x23()}], ["a", "n"]),
        ("while_data", WhileData(), [{"x": x23(8.0)}, {"x": x23(0.2)}], ["a", "n"]),
    ]
    entries, refs = [], {}
    for fname, m, calls, outs in cases:
        m.eval()
        refs[fname] = [run_torch(m, c, outs) for c in calls]
        entries.append((m, calls[0], list(calls[0]), outs, fname, None))
    path = convert(entries, "control_flow")
    for fname, m, calls, outs in cases:
        got, _ = asyncio.run(run_coreai(path, calls, fname))
        record("control_flow", path,
               "torch.cond and torch.while_loop (controlflow.if_v1 / while_v1): a branch with "
               "a linear layer, two results, a counting loop, a data-dependent loop; each "
               "function called on inputs that take each branch / loop a different number of "
               "times (data[i]: one call each), fp32.",
               calls, refs[fname], got, function=fname)


def build_control_flow_authored():
    """Control flow coreai-torch 0.4.3 cannot write, authored with coreai-core's dialect
    builders (the ones coreai-torch itself uses: `GraphOp`, `coreai.while_`, `coreai.if_`,
    `coreai.condition`, `coreai.yield_`) and saved with `AIProgram.save_asset`:

    - `nested`: a while loop whose body holds an if (coreai-torch 0.4.3 fails on a
      torch.cond inside a torch.while_loop or torch.cond: "'GraphModule' object has no
      attribute 'true_graph_0'" / a recursion error);
    - `projected`: a while loop whose condition_v1 passes on values computed in the
      condition region (2·a) rather than its own arguments, so the loop's results are not
      its loop-carried values (coreai-torch always passes the arguments on).

    The reference outputs (saved as `torch/`) are computed with numpy in float32."""
    from coreai._compiler import ir as mir
    from coreai._compiler.dialects import coreai as C
    from coreai._compiler.dialects.debuginfo.attrs import location_attr
    from coreai.authoring import AIProgram, Module
    from coreai.authoring.graph_builder import GraphOp

    def tt(shape, et):
        return mir.RankedTensorType.get(list(shape), et)

    def scalar_sum(v):
        s = C.reduce_sum(v, C.constant(np.array([0, 1], np.int32)))
        return C.reshape(s, C.constant(np.zeros((0,), np.uint32)))

    # The module and every op get the location coreai-torch's release mode writes: no
    # source ("", 0:0) and a unit scope (coreai-core's `debuginfo.location_attr`), not the
    # authoring API's compile unit and subprogram scopes (which anekit's re-encoder does
    # not handle yet; docs/coreai.md).
    with IRContext():
        loc = location_attr(src=mir.Location.file("", 0, 0), scope=mir.UnitAttr.get())
        with loc:
            mod = Module.create()
    with mod, loc:
        f32, si32 = mir.F32Type.get(), mir.IntegerType.get_signed(32)
        T = tt((2, 3), f32)
        # nested(x) -> (y, n): while sum|a| > 1: a = a/2 if sum(a) > 0 else a/2 + 1/4; n += 1
        g = GraphOp("nested", [T], [T, tt((), f32)], ["x"], ["y", "n"])
        blk = g.regions[0].blocks[0]
        with mir.InsertionPoint(blk):
            x = blk.arguments[0]
            half = C.constant(np.array(0.5, np.float32))
            res, (before, after) = C.while_([T, tt((), f32)], [x, C.constant(np.array(0.0, np.float32))])
            with before:
                a, n = before.arguments
                c = C.broadcasting_greater(scalar_sum(C.abs_(a)), C.constant(np.array(1.0, np.float32)))
                C.condition(c, a, n)
            with after:
                a, n = after.arguments
                p = C.broadcasting_greater(scalar_sum(a), C.constant(np.array(0.0, np.float32)))
                r, (then_b, else_b) = C.if_([T], p)
                with then_b:
                    C.yield_([C.broadcasting_mul(a, half)])
                with else_b:
                    C.yield_([C.broadcasting_add(C.broadcasting_mul(a, half), C.constant(np.array(0.25, np.float32)))])
                C.yield_([r, C.broadcasting_add(n, C.constant(np.array(1.0, np.float32)))])
            C.output([res[0], res[1]])
        # projected(x) -> (i, y): (i, a) = (0, x); while i < 3 passes (i, 2a) on; the body
        # yields (i + 1, 2a - x); the results are the last (i, 2a).
        g = GraphOp("projected", [T], [tt((), si32), T], ["x"], ["i", "y"])
        blk = g.regions[0].blocks[0]
        with mir.InsertionPoint(blk):
            x = blk.arguments[0]
            res, (before, after) = C.while_([tt((), si32), T], [C.constant(np.array(0, np.int32)), x])
            with before:
                i, a = before.arguments
                c = C.broadcasting_greater(C.constant(np.array(3, np.int32)), i)
                C.condition(c, i, C.broadcasting_mul(a, C.constant(np.array(2.0, np.float32))))
            with after:
                i, b = after.arguments
                C.yield_([C.broadcasting_add(i, C.constant(np.array(1, np.int32))), C.broadcasting_sub(b, x)])
            C.output([res[0], res[1]])
    path = FIX / "models" / "control_flow_authored.aimodel"
    if path.exists():
        shutil.rmtree(path)
    AIProgram(mod).save_asset(path)
    meta = json.loads((path / "metadata.json").read_text())
    meta["creationDate"] = "20260101T000000Z"
    (path / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")

    f = np.float32

    def nested_ref(x):
        a, n = x.astype(f), f(0)
        while np.abs(a).sum(dtype=f) > 1:
            a = (a * f(0.5)) if a.sum(dtype=f) > 0 else (a * f(0.5) + f(0.25))
            n += f(1)
        return {"y": a, "n": np.array(n, f)}

    def projected_ref(x):
        i, a = 0, x.astype(f)
        while True:
            passed = a * f(2)
            if not 3 > i:
                return {"i": np.array(i, np.int32), "y": passed}
            i, a = i + 1, passed - x

    rng = seed_for("control_flow_authored")
    for fname, ref, calls in [
        ("nested", nested_ref, [{"x": randn(rng, 2, 3, scale=3.0)}, {"x": -np.abs(randn(rng, 2, 3, scale=3.0))}]),
        ("projected", projected_ref, [{"x": randn(rng, 2, 3)}]),
    ]:
        got, _ = asyncio.run(run_coreai(path, calls, fname))
        record("control_flow_authored", path,
               "control flow coreai-torch cannot write, authored with coreai-core's dialect "
               "builders: an if_v1 inside a while_v1 body (nested), and a while_v1 whose "
               "condition_v1 passes on values computed in its region (projected); the "
               "references (torch/) are numpy float32.",
               calls, [ref(c["x"]) for c in calls], got, function=fname)


# =========================================================================================
# Compressed weights: coreai-torch's compression modules as parametrizations of the linear
# weights of a small MLP (weight dequantization and palettization).

class QMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(32, 64)
        self.b = nn.Linear(64, 16)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _int8_per_channel(lin):
    from coreai_torch._compression.custom_layers import WeightDequantizeModule
    from coreai_torch._compression.utils import wrap_for_parametrization
    w = lin.weight.data
    scale = w.abs().amax(dim=1, keepdim=True) / 127
    q = torch.round(w / scale).clamp(-128, 127).to(torch.int8)
    P = wrap_for_parametrization(WeightDequantizeModule)
    torch.nn.utils.parametrize.register_parametrization(lin, "weight", P(q, scale, output_dtype=torch.float32))


def _int4_per_block(lin, block=16):
    from coreai_torch._compression.custom_layers import WeightDequantizeModule
    from coreai_torch._compression.utils import wrap_for_parametrization
    w = lin.weight.data
    o, i = w.shape
    wb = w.reshape(o, i // block, block)
    scale = wb.abs().amax(dim=2, keepdim=True) / 7
    q = torch.round(wb / scale).clamp(-8, 7).reshape(o, i).to(torch.int8)
    P = wrap_for_parametrization(WeightDequantizeModule)
    torch.nn.utils.parametrize.register_parametrization(
        lin, "weight", P(q, scale.reshape(o, i // block), input_dtype=torch.int4, output_dtype=torch.float32))


def _palettize4(lin):
    from coreai_torch._compression.custom_layers import PalettizeModule
    from coreai_torch._compression.utils import wrap_for_parametrization
    w = lin.weight.data
    lut = torch.linspace(float(w.min()), float(w.max()), 16)
    idx = (w.unsqueeze(-1) - lut).abs().argmin(-1).to(torch.uint8)
    P = wrap_for_parametrization(PalettizeModule)
    torch.nn.utils.parametrize.register_parametrization(lin, "weight", P(idx, lut.reshape(1, 1, 16, 1)))


def build_compressed():
    for name, fn, what in [
        ("mlp_int8", _int8_per_channel, "int8 weights, per-output-channel scales (blockwise_shift_scale_v2)"),
        ("mlp_int4", _int4_per_block, "int4 weights, blocks of 16 along the input (blockwise_shift_scale_v2, sint4)"),
        ("mlp_palettized4", _palettize4, "4-bit palettized weights, one 16-entry LUT (lut_to_dense_v1, uint4)"),
    ]:
        rng = seed_for(name)
        m = QMLP().eval()
        fn(m.a)
        fn(m.b)
        simple(name, m, {"x": randn(rng, 2, 32)}, ["y"],
               f"linear(32->64)+relu+linear(64->16) with {what}; the PyTorch reference uses the "
               "same dequantized weights.")


# =========================================================================================
# The MobileNetV2 of the speed target (not committed: 14 MB of weights): written to
# target/bench-models/mobilenetv2_coreai/ by --bench.

def conv_bn(i, o, k, s, g=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, i, o, stride, expand):
        super().__init__()
        h = i * expand
        self.res = stride == 1 and i == o
        layers = [] if expand == 1 else [conv_bn(i, h, 1, 1)]
        layers += [conv_bn(h, h, 3, stride, h), nn.Conv2d(h, o, 1, 1, 0, bias=False), nn.BatchNorm2d(o)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (width 1.0, 224x224, 1000 classes) without dropout."""

    def __init__(self):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        layers, c = [conv_bn(3, 32, 3, 2)], 32
        for t, o, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(c, o, s if i == 0 else 1, t))
                c = o
        layers.append(conv_bn(c, 1280, 1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, 1000)

    def forward(self, x):
        return self.classifier(self.features(x).mean([2, 3]))


def build_bench(runs):
    import time
    out_dir = ROOT / "target" / "bench-models" / "mobilenetv2_coreai"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    m = MobileNetV2().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ref = run_torch(m, {"x": x}, ["y"])
    conv = coreai_torch.TorchConverter(mode=coreai_torch.TorchConverter.Mode.RELEASE)
    ep = torch.export.export(m, (torch.from_numpy(x),)).run_decompositions(coreai_torch.get_decomp_table())
    conv.add_exported_program(ep, input_names=["x"], output_names=["y"])
    path = out_dir / "mobilenetv2.aimodel"
    if path.exists():
        shutil.rmtree(path)
    conv.to_coreai().save_asset(path)
    np.save(out_dir / "x.npy", x)
    np.save(out_dir / "y_torch.npy", ref["y"])

    async def timed():
        asset = AIModelAsset.load(path)
        async with asset.executable() as model:
            fn = model.load_function("main")
            nd = {"x": NDArray(x)}
            out = await fn(nd)  # warm-up
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                out = await fn(nd)
                times.append((time.perf_counter() - t) * 1e3)
            return np.array(out["y"].numpy()), times

    y, times = asyncio.run(timed())
    np.save(out_dir / "y_coreai.npy", y)
    info = {
        "model": str(path.relative_to(ROOT)),
        "threads": int(os.environ.get("OMP_NUM_THREADS", "1")),
        "coreai_ms": times,
        "coreai_median_ms": float(np.median(times)),
        "coreai_vs_torch_max_abs": float(np.max(np.abs(y - ref["y"]))),
    }
    (out_dir / "meta.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))


# =========================================================================================
# A module with ops anekit cannot translate into MIL (the test that every one of them is
# named, with its graph, location and reason). Written with coreai-core's authoring API,
# since coreai-torch does not emit these forms; coreai-core runs it (outputs saved). The
# expected refusals go to fixtures/coreai/untranslatable.json, not to the manifest (the
# other tests run every manifest fixture through MIL), and the model to
# fixtures/coreai/refused/, not models/: the authoring API gives each graph a subprogram
# debug scope (`debuginfo.subprogram_v1`, `compile_unit_v1`, `unresolved_v1`) that
# anekit reads and prints but does not re-encode yet (tests/reencode.rs re-encodes every
# model of models/).

def build_untranslatable():
    from typing import Annotated

    import coreai.authoring as A
    from coreai.authoring import AIProgram, DebugInfo, Module, TensorType, Value, graph

    f32, i32 = np.float32, np.int32
    at = lambda line: DebugInfo.file("untranslatable.py", line, 9)  # noqa: E731
    expected = []
    mod = Module.create()
    with mod:
        @graph
        def main(
            x: Annotated[Value, TensorType((1, 3, 8, 8), f32)],
            i: Annotated[Value, TensorType((2, 3), i32)],
            j: Annotated[Value, TensorType((2, 3), i32)],
        ) -> tuple[Annotated[Value, TensorType((1, 3, 8, 8), f32, name="a")],
                   Annotated[Value, TensorType((1, 3, 2, 2), f32, name="b")],
                   Annotated[Value, TensorType((2, 3), i32, name="c")],
                   Annotated[Value, TensorType((1, 3, 8, 8), f32, name="d")]]:
            # A cumulative product (MIL's cumsum has no product form).
            a = A.scan(x, np.uint32(3), np.bool_(False), combiner="product", loc=at(10))
            # Dilated max pooling (MIL's max_pool has no dilation).
            two = np.array([2, 2], np.uint32)
            b = A.maxpool2d(TensorType((1, 3, 2, 2), f32), x, two, two, two, np.bool_(False), loc=at(20))
            # Bitwise and of integers (MIL has logical ops on bools only).
            c = A.bitwise_and(i, j, loc=at(30))
            # An op fed by a refused one: translatable, so not named.
            d = A.abs_(a, loc=at(40))
            return a, b, c, d

        @graph
        def second(
            i: Annotated[Value, TensorType((4,), i32)],
            j: Annotated[Value, TensorType((4,), i32)],
        ) -> Annotated[Value, TensorType((4,), i32, name="y")]:
            return A.bitwise_xor(i, j, loc=at(50))

        @graph
        def fine(x: Annotated[Value, TensorType((2, 3), f32)]) -> Annotated[Value, TensorType((2, 3), f32, name="y")]:
            return A.abs_(x)
    expected = [
        {"graph": "main", "op": "aicode.primitive.scan_v1", "location": "untranslatable.py:10:9"},
        {"graph": "main", "op": "aicode.primitive.max_pool_2d_v1", "location": "untranslatable.py:20:9"},
        {"graph": "main", "op": "aicode.primitive.bitwise_and_v1", "location": "untranslatable.py:30:9"},
        {"graph": "second", "op": "aicode.primitive.bitwise_xor_v1", "location": "untranslatable.py:50:9"},
    ]
    path = FIX / "refused" / "untranslatable.aimodel"
    if path.exists():
        shutil.rmtree(path)
    AIProgram(mod).save_asset(path)
    meta = json.loads((path / "metadata.json").read_text())
    meta["creationDate"] = "20260101T000000Z"
    (path / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    rng = np.random.default_rng(7)
    inputs = {"x": rng.standard_normal((1, 3, 8, 8)).astype(f32),
              "i": rng.integers(0, 64, (2, 3)).astype(i32), "j": rng.integers(0, 64, (2, 3)).astype(i32)}
    # coreai-core runs what it wrote (the module is well formed).
    got, _ = asyncio.run(run_coreai(path, [inputs]))
    ok = np.array_equal(got[0]["c"], inputs["i"] & inputs["j"]) and np.allclose(
        got[0]["a"], np.cumprod(inputs["x"], axis=3), rtol=1e-5, atol=1e-6)
    if not ok:
        raise RuntimeError("coreai-core's outputs for the untranslatable fixture are not the reference")
    (FIX / "untranslatable.json").write_text(json.dumps({
        "path": str(path.relative_to(FIX)),
        "description": "ops anekit cannot translate into MIL, with source locations (authoring API)",
        "op_counts": op_counts(path),
        "untranslated": expected,
    }, indent=1) + "\n")
    log(f"untranslatable: {len(expected)} refusals expected; coreai-core runs it")


BUILDERS = {
    "convnet": build_convnet,
    "mlp": build_mlp,
    "transformer_encoder": build_transformer,
    "decoder_sdpa": build_decoder,
    "lstm": build_lstm,
    "two_io": build_two_io,
    "stateful_kv": build_stateful,
    "multifunction": build_multifunction,
    "ops": build_ops,
    "compressed": build_compressed,
    "control_flow": build_control_flow,
    "control_flow_authored": build_control_flow_authored,
    "untranslatable": build_untranslatable,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="build only these fixtures")
    ap.add_argument("--bench", type=int, metavar="RUNS",
                    help="instead: write the MobileNetV2 of the speed target to target/bench-models/"
                         "mobilenetv2_coreai/ and time coreai-core on it RUNS times")
    args = ap.parse_args()
    if args.bench:
        build_bench(args.bench)
        return
    names = args.only or list(BUILDERS)
    manifest_path = FIX / "manifest.json"
    if args.only and manifest_path.exists():
        # Keep the fixtures not rebuilt now.
        old = json.loads(manifest_path.read_text())
        keep = {k: v for k, v in old["fixtures"].items() if k not in names and not (
            "compressed" in names and k.startswith("mlp_"))}
        MANIFEST.update(keep)
    failed = {}
    for n in names:
        try:
            BUILDERS[n]()
        except Exception as e:  # noqa: BLE001
            log(f"{n}: FAILED: {type(e).__name__}: {e}")
            failed[n] = f"{type(e).__name__}: {e}"
    generator = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "coreai-core": __import__("coreai").__version__ if hasattr(__import__("coreai"), "__version__") else "1.0.0b3",
        "coreai-torch": coreai_torch.__version__,
    }
    manifest_path.write_text(json.dumps(
        {"generator": generator, "fixtures": dict(sorted(MANIFEST.items())), "failed": failed}, indent=1) + "\n")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
