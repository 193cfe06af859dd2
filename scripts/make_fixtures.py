#!/usr/bin/env python3
"""Regenerate everything under fixtures/ (models, reference data, manifest.json).

    scripts/setup-python.sh --with-torch
    .venv/bin/python scripts/make_fixtures.py

Small PyTorch modules with fixed seeds are traced (`torch.jit.trace`) and converted by
coremltools (`ct.convert(..., convert_to="mlprogram")`, explicit input/output names). The
fp32 PyTorch module is the numerical reference: its inputs and outputs are saved as .npy
under fixtures/data/<network>/. Compressed variants are made with coremltools.optimize.coreml
from the fp16 packages of one network (`mlp_big`). fixtures/manifest.json lists every fixture
with its description, op counts (the same function as `scripts/interop.py op-counts`) and data.

fixtures/external/ (files copied from the coremltools repository) is not touched, only listed.
See fixtures/README.md.
"""

import os

# Determinism: single-threaded math everywhere (torch, numpy BLAS, scikit-learn k-means).
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.simplefilter("ignore")
logging.getLogger("coremltools").setLevel(logging.ERROR)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import coremltools as ct  # noqa: E402
import coremltools.optimize.coreml as cto  # noqa: E402

logging.getLogger("coremltools").setLevel(logging.ERROR)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIX = ROOT / "fixtures"
sys.path.insert(0, str(HERE))
import interop  # noqa: E402  (op counts / descriptions: one implementation for both)


def _patch_coremltools_for_numpy24():
    """coremltools 9.0's torch frontend converts aten::Int / aten::Bool of a constant with
    `int(x.val)`; numpy 2.4 raises TypeError when x.val is a 1-element array of rank >= 1
    (nn.MultiheadAttention traces hit this). Same result via .item()."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch import ops as torch_ops

    orig = torch_ops._cast

    def _cast(context, node, dtype, dtype_name):
        x = torch_ops._get_inputs(context, node, expected=1)[0]
        if x.can_be_folded_to_const() and isinstance(x.val, np.ndarray) and x.val.size == 1:
            context.add(mb.const(val=dtype(x.val.item()), name=node.name), node.name)
            return
        orig(context, node, dtype, dtype_name)

    torch_ops._cast = _cast


_patch_coremltools_for_numpy24()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

TARGETS = {
    "iOS15": ct.target.iOS15,
    "iOS16": ct.target.iOS16,
    "iOS17": ct.target.iOS17,
    "iOS18": ct.target.iOS18,
}
PRECISIONS = {"fp32": ct.precision.FLOAT32, "fp16": ct.precision.FLOAT16}

MANIFEST = []  # fixture entries, in generation order


def log(msg):
    print(f"make_fixtures: {msg}", flush=True)


def seed_for(name):
    """Per-network seed, independent of generation order."""
    s = zlib.crc32(name.encode())
    torch.manual_seed(s)
    np.random.seed(s)
    return np.random.default_rng(s)


def rel(p):
    return str(Path(p).relative_to(FIX))


def save_npy(path, arr):
    path = FIX / path
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
    return rel(path)


def save_scalar_npy(path, arr):
    """Save a 0-d array as 0-d (save_npy's np.ascontiguousarray makes it 1-d)."""
    path = FIX / path
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr, allow_pickle=False)
    return rel(path)


def save_io(network, inputs, outputs, in_dir="inputs", out_dir="outputs"):
    """Save dicts of numpy arrays; returns {"inputs": {name: path}, "outputs": {...}}."""
    base = Path("data") / network
    return {
        "inputs": {k: save_npy(base / in_dir / f"{k}.npy", v) for k, v in inputs.items()},
        "outputs": {k: save_npy(base / out_dir / f"{k}.npy", v) for k, v in outputs.items()},
    }


def to_torch(a):
    t = torch.from_numpy(np.array(a))
    return t.long() if t.dtype == torch.int32 else t


def run_torch(module, inputs, names):
    with torch.no_grad():
        out = module(*[to_torch(v) for v in inputs.values()])
    if isinstance(out, torch.Tensor):
        out = (out,)
    return {n: o.detach().numpy().astype(np.float32) for n, o in zip(names, out)}


def fp16_emulation_error(module, inputs, ref):
    """Max abs difference of a half-precision CPU run against the fp32 reference (a rough
    guide to fp16 tolerances; None where torch's CPU kernels lack half support)."""
    import copy

    try:
        m16 = copy.deepcopy(module).half()
        args = []
        for v in inputs.values():
            t = to_torch(v)
            args.append(t.half() if t.is_floating_point() else t)
        with torch.no_grad():
            out = m16(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return max(float(np.max(np.abs(o.float().numpy() - r))) for o, r in zip(out, ref.values()))
    except Exception:  # noqa: BLE001
        return None


def trace(module, inputs):
    args = tuple(to_torch(v) for v in inputs.values())
    # Trace with autograd on (no torch.no_grad): keeps nn.TransformerEncoder off its fused
    # inference fast path, which coremltools cannot convert.
    return torch.jit.trace(module, args, check_trace=False)


def tensor_types(inputs, io_fp32, flexible=None):
    res = []
    for name, v in inputs.items():
        shape = flexible.get(name, v.shape) if flexible else v.shape
        kw = {"name": name, "shape": shape}
        if v.dtype == np.int32:
            kw["dtype"] = np.int32
        elif io_fp32:
            kw["dtype"] = np.float32
        res.append(ct.TensorType(**kw))
    return res


def convert(traced, inputs, output_names, precision, target, io_fp32=False, flexible=None, **kw):
    outs = [
        ct.TensorType(name=n, dtype=np.float32) if io_fp32 else ct.TensorType(name=n) for n in output_names
    ]
    return ct.convert(
        traced,
        inputs=tensor_types(inputs, io_fp32, flexible),
        outputs=outs,
        convert_to="mlprogram",
        compute_precision=PRECISIONS[precision],
        minimum_deployment_target=TARGETS[target],
        **kw,
    )


def save_model(mlmodel, name, ext=".mlpackage"):
    path = FIX / "models" / f"{name}{ext}"
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    mlmodel.save(str(path))
    normalize(path)
    keep_empty_folders(path)
    return path


def keep_empty_folders(path):
    """Git drops empty folders, and coremltools refuses a package whose manifest names a
    missing item ("Item does not exist for identifier"): a model without weight files has an
    empty `weights` folder, so put a `.gitkeep` in it. Core ML ignores unlisted files."""
    if path.is_dir():
        for d in path.rglob("*"):
            if d.is_dir() and not any(d.iterdir()):
                (d / ".gitkeep").touch()


def normalize(path):
    """Make a saved model byte-reproducible without changing its content:
    - coremltools serializes the Model protobuf with map fields (op inputs/attributes,
      function maps) in arbitrary order; re-serialize with deterministic=True (sorted keys);
    - Manifest.json item identifiers are random uuid4s; replace them with uuid5s derived
      from the fixture name and item path (same JSON layout as coremltools writes).
    The conversion_date metadata (a day) is left as coremltools wrote it."""
    import uuid

    from coremltools.proto import Model_pb2

    path = Path(path)

    def reserialize(f):
        m = Model_pb2.Model()
        m.ParseFromString(f.read_bytes())
        f.write_bytes(m.SerializeToString(deterministic=True))

    if path.is_file():
        reserialize(path)
        return
    man_path = path / "Manifest.json"
    raw = man_path.read_text()
    man = json.loads(raw)
    # coremltools' own layout: 4-space indent, sorted keys, trailing newline
    assert json.dumps(man, indent=4, sort_keys=True) + "\n" == raw, "unexpected Manifest.json layout"
    ids = {}
    for old_id, item in man["itemInfoEntries"].items():
        ids[old_id] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"anekit-fixture:{path.name}:{item['path']}"))
        if item["name"] == "model.mlmodel":
            reserialize(path / "Data" / item["path"])
    man["itemInfoEntries"] = {ids[k]: v for k, v in man["itemInfoEntries"].items()}
    man["rootModelIdentifier"] = ids[man["rootModelIdentifier"]]
    man_path.write_text(json.dumps(man, indent=4, sort_keys=True) + "\n")


def record(name, path, network, precision, data, notes, compression=None, extra=None):
    """Describe the saved model (re-read from disk) and append a manifest entry."""
    import copy

    data = copy.deepcopy(data)  # data lists are shared by a network's variants
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    desc = interop.describe_spec(spec, str(path))
    fmt = desc["format"]

    def io(features):
        return [
            {k: f.get(k) for k in ("name", "dtype", "shape", "flexible")} for f in features
        ]

    default_fn = desc["default_function"]
    fn_desc = {f["name"]: f for f in desc["functions"]}
    entry = {
        "name": name,
        "path": rel(path),
        "format": fmt,
        "network": network,
        "precision": precision,
        "deployment_target": desc["deployment_target"],
        "spec_version": desc["spec_version"],
        "model_type": desc["model_type"],
        "functions": [f["name"] for f in desc["functions"]],
        "default_function": default_fn,
        "inputs": io(fn_desc[default_fn]["inputs"]),
        "outputs": [{k: f.get(k) for k in ("name", "dtype", "shape")} for f in fn_desc[default_fn]["outputs"]],
        "states": [{k: f.get(k) for k in ("name", "dtype", "shape")} for f in fn_desc[default_fn]["states"]],
        "compression": compression,
        "data": data,
        "coremltools_op_counts": op_counts(spec),
        "notes": notes,
    }
    if len(desc["functions"]) > 1:
        entry["function_io"] = {
            f["name"]: {
                "inputs": io(f["inputs"]),
                "outputs": [{k: o.get(k) for k in ("name", "dtype", "shape")} for o in f["outputs"]],
                "states": [{k: s.get(k) for k in ("name", "dtype", "shape")} for s in f["states"]],
            }
            for f in desc["functions"]
        }
    if desc["model_type"] == "mlProgram":
        entry["opsets"] = {k: v["opset"] for k, v in desc["program"]["functions"].items()}
    if extra:
        entry.update(extra)
    for d in data:
        if "tolerance" not in d:
            d["tolerance"] = default_tolerance(precision, d)
    MANIFEST.append(entry)
    ops = entry["coremltools_op_counts"]
    log(f"  {name}: spec {entry['spec_version']}, " + "; ".join(
        f"{fn}: " + ", ".join(f"{k}={v}" for k, v in c.items()) for fn, c in ops.items()))
    return entry


def op_counts(spec):
    """interop.op_counts_from_spec, with a pipeline's layer counts summed over its stages."""
    kind = spec.WhichOneof("Type")
    if kind not in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        return interop.op_counts_from_spec(spec)
    pipe = spec.pipeline if kind == "pipeline" else getattr(spec, kind).pipeline
    total = {}
    for m in pipe.models:
        for k, v in op_counts(m)["main"].items():
            total[k] = total.get(k, 0) + v
    return {"main": dict(sorted(total.items()))}


def default_tolerance(precision, d):
    """Suggested numpy.allclose-style bound |got - want| <= atol + rtol*|want| for a runtime's
    output against this data entry: fp32 compute 1e-4/1e-3, fp16 compute 1e-2/1e-2, atol
    scaled by max(1, max |want|)."""
    m = max(float(np.max(np.abs(np.load(FIX / p)))) for p in d["outputs"].values())
    scale = max(1.0, m)
    if precision == "fp32":
        return {"atol": float("%.3g" % (1e-4 * scale)), "rtol": 1e-3}
    return {"atol": float("%.3g" % (1e-2 * scale)), "rtol": 1e-2}


def main_data(io_paths, function="main", **kw):
    d = {"function": function, "inputs": io_paths["inputs"], "outputs": io_paths["outputs"]}
    d.update(kw)
    return d


# =========================================================================================
# Networks


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv1(x))))
        x = F.relu(self.conv2(x))
        x = torch.flatten(self.gap(x), 1)
        return self.fc(x)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.ln = nn.LayerNorm(128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        h = F.gelu(self.ln(self.fc1(x)))
        h = F.gelu(self.fc2(h))
        return torch.softmax(self.fc3(h), dim=-1)


class MLPBig(nn.Module):
    """Weights big enough (256x256 = 65536, 16x256 = 4096 elements) for the default
    weight_threshold (2048) of coremltools.optimize.coreml."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(256, 256)
        self.l2 = nn.Linear(256, 256)
        self.l3 = nn.Linear(256, 256)
        self.head = nn.Linear(256, 16)
        with torch.no_grad():  # He-normal init: outputs of order 1 (default init shrinks them)
            for lin in (self.l1, self.l2, self.l3):
                nn.init.normal_(lin.weight, 0.0, (2.0 / 256) ** 0.5)
                nn.init.normal_(lin.bias, 0.0, 0.1)
            nn.init.normal_(self.head.weight, 0.0, (1.0 / 256) ** 0.5)
            nn.init.normal_(self.head.bias, 0.0, 0.1)

    def forward(self, x):
        h = F.relu(self.l1(x))
        h = F.relu(self.l2(h))
        h = F.gelu(self.l3(h))
        return self.head(h)

    def linears(self):
        return [self.l1, self.l2, self.l3, self.head]


class Decoder(nn.Module):
    """Token ids -> embedding (+ learned positions) -> 2 pre-LN causal blocks using
    F.scaled_dot_product_attention(is_causal=True) -> LayerNorm -> vocabulary head."""

    V, D, H, T = 128, 64, 4, 16

    class Block(nn.Module):
        def __init__(self, d, h, t):
            super().__init__()
            self.d, self.h, self.t = d, h, t
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, 4 * d)
            self.fc2 = nn.Linear(4 * d, d)

        def forward(self, x):
            # static sizes (x.shape would trace into aten::size/Int ops)
            b, t, d, h = 1, self.t, self.d, self.h
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
            q = q.reshape(b, t, h, d // h).transpose(1, 2)
            k = k.reshape(b, t, h, d // h).transpose(1, 2)
            v = v.reshape(b, t, h, d // h).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(self.V, self.D)
        self.pos = nn.Parameter(torch.randn(1, self.T, self.D) * 0.02)
        self.blocks = nn.ModuleList([self.Block(self.D, self.H, self.T) for _ in range(2)])
        self.ln = nn.LayerNorm(self.D)
        self.head = nn.Linear(self.D, self.V)

    def forward(self, ids):
        x = self.emb(ids) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, num_layers=1, batch_first=True)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1, :])


class TwoIO(nn.Module):
    def __init__(self):
        super().__init__()
        self.fa = nn.Linear(8, 6)
        self.fb = nn.Linear(6, 6)

    def forward(self, a, b):  # a [1,8], b [1,4,6]
        ya = self.fa(a)
        y_sum = ya + self.fb(b).mean(dim=1)
        y_prod = b * torch.sigmoid(ya).unsqueeze(1)
        return y_sum, y_prod


class Conv1dNet(nn.Module):
    """x [1, 8, T] -> y [1, 4, T]; any T >= 1."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(8, 16, 3, padding=1)
        self.c2 = nn.Conv1d(16, 4, 1)

    def forward(self, x):
        return self.c2(F.relu(self.c1(x)))


class SlidingKV(nn.Module):
    """One-token attention over a sliding window KV cache held in two buffers (Core ML
    states). Each call: k, v = proj(x); caches shift left by one and append k, v in place;
    y = out(softmax(q K^T / 4) V)."""

    W, D = 8, 16

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(self.D, self.D)
        self.k = nn.Linear(self.D, self.D)
        self.v = nn.Linear(self.D, self.D)
        self.o = nn.Linear(self.D, self.D)
        self.register_buffer("k_cache", torch.zeros(1, self.W, self.D))
        self.register_buffer("v_cache", torch.zeros(1, self.W, self.D))

    def forward(self, x):  # x [1, 1, D]
        k = self.k(x)
        v = self.v(x)
        self.k_cache[:, :-1, :] = self.k_cache[:, 1:, :].clone()
        self.k_cache[:, -1:, :] = k
        self.v_cache[:, :-1, :] = self.v_cache[:, 1:, :].clone()
        self.v_cache[:, -1:, :] = v
        att = torch.softmax(self.q(x) @ self.k_cache.transpose(1, 2) / 4.0, dim=-1)
        return self.o(att @ self.v_cache)


class MultiHead(nn.Module):
    """Shared backbone, two heads; each head is converted as its own function."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(64, 128)
        self.l2 = nn.Linear(128, 128)
        self.cls = nn.Linear(128, 10)
        self.reg = nn.Linear(128, 4)

    def features(self, x):
        return F.gelu(self.l2(F.gelu(self.l1(x))))


class Classify(nn.Module):
    def __init__(self, mh):
        super().__init__()
        self.mh = mh

    def forward(self, x):
        return torch.softmax(self.mh.cls(self.mh.features(x)), dim=-1)


class Regress(nn.Module):
    def __init__(self, mh):
        super().__init__()
        self.mh = mh

    def forward(self, x):
        return self.mh.reg(self.mh.features(x))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Linear(16, 4)

    def forward(self, x):
        return torch.sigmoid(self.b(F.relu(self.a(x))))


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# =========================================================================================
# Fixture builders


def ref_stats(module, inputs, ref):
    return {
        "max_abs_output": max(float(np.max(np.abs(v))) for v in ref.values()),
        "fp16_emulated_max_abs_err": fp16_emulation_error(module, inputs, ref),
    }


def build_convnet():
    rng = seed_for("convnet")
    m = ConvNet()
    with torch.no_grad():  # non-trivial batch-norm statistics
        m.bn.running_mean.copy_(torch.randn(16) * 0.1)
        m.bn.running_var.copy_(torch.rand(16) + 0.5)
        m.bn.weight.copy_(torch.rand(16) + 0.5)
        m.bn.bias.copy_(torch.randn(16) * 0.1)
    m.eval()
    inputs = {"x": randn(rng, 1, 3, 32, 32)}
    ref = run_torch(m, inputs, ["y"])
    data = [main_data(save_io("convnet", inputs, ref))]
    tr = trace(m, inputs)
    stats = ref_stats(m, inputs, ref)
    for name, prec, tgt, io32 in [
        ("convnet_fp32_ios15", "fp32", "iOS15", False),
        ("convnet_fp16_ios16", "fp16", "iOS16", True),
    ]:
        p = save_model(convert(tr, inputs, ["y"], prec, tgt, io_fp32=io32), name)
        record(name, p, "convnet", prec, data,
               "conv+batchnorm+relu+maxpool+conv+relu+avgpool+flatten+linear; coremltools fuses the "
               "batch norm into the first conv. " + io_note(prec, io32),
               extra={"reference_stats": stats})


def io_note(prec, io32):
    if prec == "fp32":
        return "I/O fp32."
    if io32:
        return "fp16 compute with explicit fp32 I/O (dtype=np.float32 on inputs/outputs: cast ops at the edges)."
    return ("fp16 compute with coremltools' default I/O: for iOS16+ fp16 programs unspecified fp32 "
            "inputs/outputs become FLOAT16 multiarrays.")


def build_mlp():
    rng = seed_for("mlp")
    m = MLP().eval()
    inputs = {"x": randn(rng, 1, 64)}
    ref = run_torch(m, inputs, ["y"])
    data = [main_data(save_io("mlp", inputs, ref))]
    tr = trace(m, inputs)
    stats = ref_stats(m, inputs, ref)
    for name, prec, tgt, io32 in [
        ("mlp_fp32_ios15", "fp32", "iOS15", False),
        ("mlp_fp16_ios16", "fp16", "iOS16", True),
        ("mlp_fp16_ios17", "fp16", "iOS17", False),
        ("mlp_fp16_ios18", "fp16", "iOS18", False),
    ]:
        p = save_model(convert(tr, inputs, ["y"], prec, tgt, io_fp32=io32), name)
        record(name, p, "mlp", prec, data,
               "linear+layernorm+gelu+linear+gelu+linear+softmax. " + io_note(prec, io32),
               extra={"reference_stats": stats})


def build_transformer():
    rng = seed_for("transformer_encoder")
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0,
                                       batch_first=True)
    m = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    inputs = {"x": randn(rng, 1, 16, 64)}
    ref = run_torch(m, inputs, ["y"])
    data = [main_data(save_io("transformer_encoder", inputs, ref))]
    tr = trace(m, inputs)
    name = "transformer_encoder_fp16_ios17"
    p = save_model(convert(tr, inputs, ["y"], "fp16", "iOS17", io_fp32=True), name)
    record(name, p, "transformer_encoder", "fp16", data,
           "nn.TransformerEncoder, 2 post-LN layers, d_model 64, 4 heads, ffn 128, seq 16, batch_first, "
           "dropout 0 (traced with autograd on so torch takes the decomposed path, not the fused "
           "inference fast path). " + io_note("fp16", True),
           extra={"reference_stats": ref_stats(m, inputs, ref)})


def build_decoder():
    rng = seed_for("decoder_sdpa")
    m = Decoder().eval()
    inputs = {"input_ids": rng.integers(0, Decoder.V, size=(1, Decoder.T)).astype(np.int32)}
    ref = run_torch(m, inputs, ["logits"])
    data = [main_data(save_io("decoder_sdpa", inputs, ref))]
    tr = trace(m, inputs)
    name = "decoder_sdpa_fp16_ios18"
    p = save_model(convert(tr, inputs, ["logits"], "fp16", "iOS18"), name)
    e = record(name, p, "decoder_sdpa", "fp16", data,
               "int32 token ids [1,16] -> embedding + learned positions -> 2 pre-LN causal blocks with "
               "F.scaled_dot_product_attention(is_causal=True) -> layernorm -> linear head (vocab 128). "
               "iOS18: coremltools emits scaled_dot_product_attention (the causal mask is built in the "
               "graph). " + io_note("fp16", False),
               extra={"reference_stats": ref_stats(m, inputs, ref)})
    assert e["coremltools_op_counts"]["main"].get("scaled_dot_product_attention", 0) == 2, e


def build_lstm():
    rng = seed_for("lstm")
    m = LSTMNet().eval()
    inputs = {"x": randn(rng, 1, 8, 16)}
    ref = run_torch(m, inputs, ["y"])
    data = [main_data(save_io("lstm", inputs, ref))]
    tr = trace(m, inputs)
    name = "lstm_fp32_ios15"
    p = save_model(convert(tr, inputs, ["y"], "fp32", "iOS15"), name)
    record(name, p, "lstm", "fp32", data,
           "nn.LSTM(16 -> 32, 1 layer, batch_first), seq 8, then linear(32 -> 10) on the last step. I/O fp32.",
           extra={"reference_stats": ref_stats(m, inputs, ref)})


def build_two_io():
    rng = seed_for("two_io")
    m = TwoIO().eval()
    inputs = {"a": randn(rng, 1, 8), "b": randn(rng, 1, 4, 6)}
    names = ["y_sum", "y_prod"]
    ref = run_torch(m, inputs, names)
    data = [main_data(save_io("two_io", inputs, ref))]
    tr = trace(m, inputs)
    name = "two_io_fp32_ios16"
    p = save_model(convert(tr, inputs, names, "fp32", "iOS16"), name)
    record(name, p, "two_io", "fp32", data,
           "inputs a [1,8], b [1,4,6]; outputs y_sum = fa(a) + mean_1(fb(b)) [1,6] and "
           "y_prod = b * sigmoid(fa(a)) [1,4,6]. I/O fp32.",
           extra={"reference_stats": ref_stats(m, inputs, ref)})


def build_flexible():
    rng = seed_for("conv1d")
    m = Conv1dNet().eval()
    lengths = [1, 8, 16, 32, 64]
    per_len = {}
    for t in lengths:
        inputs = {"x": randn(rng, 1, 8, t)}
        ref = run_torch(m, inputs, ["y"])
        per_len[t] = main_data(save_io("conv1d", inputs, ref, f"inputs_T{t}", f"outputs_T{t}"), label=f"T{t}")
    ex = {"x": randn(rng, 1, 8, 16)}
    tr = trace(m, ex)
    note = ("Conv1d(8->16, k3, pad 1) + relu + Conv1d(16->4, k1) over x [1, 8, T] -> y [1, 4, T]. "
            + io_note("fp16", False) + " ")

    name = "flexible_range_fp16_ios17"
    p = save_model(convert(tr, ex, ["y"], "fp16", "iOS17",
                           flexible={"x": (1, 8, ct.RangeDim(lower_bound=1, upper_bound=64, default=16))}), name)
    record(name, p, "conv1d", "fp16", [per_len[t] for t in (1, 8, 16, 64)],
           note + "T = ct.RangeDim(1, 64, default 16): description shape [1,8,16] + shapeRange "
           "[[1,1],[8,8],[1,64]]; the MIL function input has an unknown dimension; the output "
           "description has no shape.")

    name = "flexible_enum_fp16_ios17"
    shapes = [(1, 8, 8), (1, 8, 16), (1, 8, 32)]
    p = save_model(convert(tr, ex, ["y"], "fp16", "iOS17",
                           flexible={"x": ct.EnumeratedShapes(shapes=shapes, default=(1, 8, 16))}), name)
    record(name, p, "conv1d", "fp16", [per_len[t] for t in (8, 16, 32)],
           note + "x: ct.EnumeratedShapes [1,8,8], [1,8,16], [1,8,32], default [1,8,16]; coremltools "
           "writes the default shape first in enumeratedShapes; the MIL function input has an "
           "unknown dimension; the output description has no shape.")


def build_stateful():
    rng = seed_for("stateful_kv")
    m = SlidingKV().eval()
    steps = [{"x": randn(rng, 1, 1, SlidingKV.D)} for _ in range(3)]
    tr = trace(m, steps[0])  # tracing runs forward once: fresh zero caches afterwards
    m.k_cache = torch.zeros(1, SlidingKV.W, SlidingKV.D)
    m.v_cache = torch.zeros(1, SlidingKV.W, SlidingKV.D)
    data = []
    for i, inputs in enumerate(steps):
        ref = run_torch(m, inputs, ["y"])
        io_paths = save_io("stateful_kv", inputs, ref, f"inputs_step{i}", f"outputs_step{i}")
        states_after = {
            "k_cache": save_npy(Path("data/stateful_kv") / f"states_after_step{i}" / "k_cache.npy",
                                m.k_cache.detach().numpy().astype(np.float32)),
            "v_cache": save_npy(Path("data/stateful_kv") / f"states_after_step{i}" / "v_cache.npy",
                                m.v_cache.detach().numpy().astype(np.float32)),
        }
        data.append(main_data(io_paths, label=f"step{i}", step=i, states_after=states_after))
    states = [
        ct.StateType(wrapped_type=ct.TensorType(shape=(1, SlidingKV.W, SlidingKV.D)), name="k_cache"),
        ct.StateType(wrapped_type=ct.TensorType(shape=(1, SlidingKV.W, SlidingKV.D)), name="v_cache"),
    ]
    name = "stateful_fp16_ios18"
    p = save_model(convert(tr, steps[0], ["y"], "fp16", "iOS18", states=states), name)
    e = record(name, p, "stateful_kv", "fp16", data,
               "Sliding-window KV cache: two registered buffers k_cache, v_cache [1,8,16] become Core ML "
               "states (fp16). Call sequence: start with both states all zero (the torch buffers start "
               "at zero), then call step0, step1, step2 in order with the same state; data[i] holds "
               "that call's input, output and the states after it. In-place slice assignment becomes "
               "read_state -> slice_update -> write_state (+ read_state to get the new value). "
               + io_note("fp16", False))
    c = e["coremltools_op_counts"]["main"]
    assert c.get("read_state", 0) > 0 and c.get("write_state", 0) > 0, c


def build_multifunction():
    rng = seed_for("multihead")
    mh = MultiHead().eval()
    x = randn(rng, 1, 64)
    funcs = [("classify", Classify(mh).eval(), "probs"), ("regress", Regress(mh).eval(), "values")]
    data = []
    with tempfile.TemporaryDirectory() as tmp:
        desc = ct.utils.MultiFunctionDescriptor()
        for fname, mod, out in funcs:
            inputs = {"x": x}
            ref = run_torch(mod, inputs, [out])
            io_paths = save_io(f"multihead/{fname}", inputs, ref)
            data.append(main_data(io_paths, function=fname))
            ml = convert(trace(mod, inputs), inputs, [out], "fp16", "iOS18")
            part = os.path.join(tmp, f"{fname}.mlpackage")
            ml.save(part)
            desc.add_function(part, src_function_name="main", target_function_name=fname)
        desc.default_function_name = "classify"
        path = FIX / "models" / "multifunction_fp16_ios18.mlpackage"
        if path.exists():
            shutil.rmtree(path)
        ct.utils.save_multifunction(desc, str(path))
        normalize(path)
    record("multifunction_fp16_ios18", path, "multihead", "fp16", data,
           "ct.utils.save_multifunction of two iOS18 fp16 conversions that share a backbone "
           "(linear 64->128, gelu, linear 128->128, gelu): function 'classify' (linear 128->10 + "
           "softmax -> probs [1,10]) and 'regress' (linear 128->4 -> values [1,4]); default function "
           "'classify'. Identical backbone weights are stored once in weight.bin. The top-level "
           "description inputs/outputs are empty (per-function descriptions instead) and the "
           "user-defined metadata is dropped by save_multifunction. " + io_note("fp16", False))


def build_neuralnetwork():
    rng = seed_for("tiny")
    m = Tiny().eval()
    inputs = {"x": randn(rng, 1, 8)}
    ref = run_torch(m, inputs, ["y"])
    data = [main_data(save_io("tiny", inputs, ref))]
    ml = ct.convert(trace(m, inputs), inputs=[ct.TensorType(name="x", shape=(1, 8))],
                    outputs=[ct.TensorType(name="y")], convert_to="neuralnetwork")
    p = save_model(ml, "neuralnetwork_fp32", ext=".mlmodel")
    record("neuralnetwork_fp32", p, "tiny", "fp32", data,
           "convert_to='neuralnetwork' still works with torch 2.7 / coremltools 9.0 (no deployment "
           "target given): spec version 4, layers innerProduct/activation, single protobuf file. "
           "The output description has no shape. op counts are NeuralNetwork layer kinds (the name "
           "of the set NeuralNetworkLayer.layer oneof field).")


def build_control_flow():
    """Nested blocks (while_loop body/cond, cond branches) for op counting and the
    interpreter. Built with coremltools' MIL builder: torch.jit.trace unrolls Python loops,
    so a traced PyTorch module never yields while_loop/cond."""
    from coremltools.converters.mil import Builder as mb

    rng = seed_for("control_flow")

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        def cond(i, acc):
            return mb.less(x=i, y=np.int32(3))

        def body(i, acc):
            return mb.add(x=i, y=np.int32(1)), mb.add(x=mb.mul(x=acc, y=np.float32(0.5)), y=mb.sin(x=acc))

        _, acc = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), x))
        total = mb.reduce_sum(x=acc)
        y = mb.cond(pred=mb.greater(x=total, y=np.float32(0.0)),
                    _true_fn=lambda: mb.relu(x=acc),
                    _false_fn=lambda: mb.mul(x=acc, y=np.float32(-1.0)))
        return mb.identity(x=y, name="y")

    def reference(x):
        acc = x.astype(np.float32)
        for _ in range(3):
            acc = (acc * np.float32(0.5) + np.sin(acc)).astype(np.float32)
        return np.maximum(acc, 0) if acc.sum() > 0 else -acc

    data = []
    for label, sign in (("pos", 1.0), ("neg", -1.0)):
        x = (np.abs(randn(rng, 1, 4)) * sign).astype(np.float32)
        io_paths = save_io("control_flow", {"x": x}, {"y": reference(x)}, f"inputs_{label}", f"outputs_{label}")
        data.append(main_data(io_paths, label=label))
    ml = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                    compute_precision=ct.precision.FLOAT32)
    name = "control_flow_fp32_ios17"
    p = save_model(ml, name)
    e = record(name, p, "control_flow", "fp32", data,
               "MIL-builder program (no PyTorch): acc = x; 3 times acc = acc*0.5 + sin(acc) in a "
               "while_loop; then cond(sum(acc) > 0): relu(acc) else -acc; y = identity. Nested blocks: "
               "the while_loop has cond and body blocks, the cond op a true and a false block; "
               "op counts include their ops. Reference computed with numpy in float32; data 'pos' "
               "takes the true branch, 'neg' the false one. I/O fp32.")
    c = e["coremltools_op_counts"]["main"]
    assert c.get("while_loop") == 1 and c.get("cond") == 1, c


# ---------------------------------------------------------------------------------------------
# mlp_big and its compressed variants


def package_linear_weights(path):
    """(weight, bias) float32 arrays of every `linear` op of main, in program order, with
    constexpr weights decompressed by coremltools (materialized_val_inference)."""
    model = ct.models.MLModel(str(path), skip_model_load=True)
    prog = interop.load_program(model, model.get_spec())

    def value(var):
        if var.op.op_type.startswith("constexpr_"):
            v = var.op.materialized_val_inference()
            return v[0] if isinstance(v, (list, tuple)) else v
        return var.val

    res = []
    for op in prog.functions["main"].operations:
        if op.op_type == "linear":
            res.append((np.asarray(value(op.weight), np.float32), np.asarray(value(op.bias), np.float32)))
    return res


def package_weights_reference(m, path, inputs):
    import copy

    m2 = copy.deepcopy(m)
    ws = package_linear_weights(path)
    assert len(ws) == len(m2.linears()), (path, len(ws))
    with torch.no_grad():
        for lin, (w, b) in zip(m2.linears(), ws):
            assert tuple(lin.weight.shape) == w.shape, (path, lin.weight.shape, w.shape)
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
    return run_torch(m2, inputs, ["y"])


def err_stats(a, b):
    a, b = a["y"].astype(np.float64), b["y"].astype(np.float64)
    return {
        "max_abs": float(np.max(np.abs(a - b))),
        "rel_l2": float(np.linalg.norm(a - b) / np.linalg.norm(b)),
    }


def build_mlp_big():
    rng = seed_for("mlp_big")
    m = MLPBig().eval()
    inputs = {"x": randn(rng, 1, 256)}
    ref = run_torch(m, inputs, ["y"])
    io_paths = save_io("mlp_big", inputs, ref)
    tr = trace(m, inputs)
    stats = ref_stats(m, inputs, ref)
    arch = "linear 256->256 + relu, linear 256->256 + relu, linear 256->256 + gelu, linear 256->16. "

    def entry_data(name, path):
        pw = package_weights_reference(m, path, inputs)
        pw_paths = {"y": save_npy(Path("data/mlp_big") / f"outputs_{name}" / "y.npy", pw["y"])}
        return [
            main_data(io_paths, label="reference"),
            {"function": "main", "label": "package_weights", "inputs": io_paths["inputs"], "outputs": pw_paths},
        ], err_stats(pw, ref)

    bases = {}
    for tgt in ("iOS16", "iOS18"):
        name = f"mlp_big_fp16_{tgt.lower()}"
        p = save_model(convert(tr, inputs, ["y"], "fp16", tgt), name)
        bases[tgt] = ct.models.MLModel(str(p), skip_model_load=True)
        data, err = entry_data(name, p)
        record(name, p, "mlp_big", "fp16", data,
               arch + "Uncompressed base of the compressed mlp_* fixtures. " + io_note("fp16", False),
               extra={"reference_stats": stats, "package_weights_error": err})

    C = cto.OptimizationConfig
    lin_int8 = dict(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    int4 = dict(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32)
    pal_g = dict(mode="kmeans", nbits=4, granularity="per_grouped_channel", group_size=16)
    pal_t = dict(mode="kmeans", nbits=4, granularity="per_tensor")
    prune = dict(target_sparsity=0.5)

    variants = [
        ("mlp_int8_per_channel_ios16", "iOS16", [("linear", lin_int8)], ["constexpr_affine_dequantize"],
         "attributes"),
        ("mlp_int8_per_channel_ios18", "iOS18", [("linear", lin_int8)], ["constexpr_blockwise_shift_scale"],
         "inputs"),
        ("mlp_int4_per_block_ios18", "iOS18", [("linear", int4)], ["constexpr_blockwise_shift_scale"], "inputs"),
        ("mlp_palettized4_grouped_ios18", "iOS18", [("palettize", pal_g)], ["constexpr_lut_to_dense"], "inputs"),
        ("mlp_palettized4_ios16", "iOS16", [("palettize", pal_t)], ["constexpr_lut_to_dense"], "attributes"),
        ("mlp_pruned50_ios18", "iOS18", [("prune", prune)], ["constexpr_sparse_to_dense"], "inputs"),
        ("mlp_pruned50_ios16", "iOS16", [("prune", prune)], ["constexpr_sparse_to_dense"], "attributes"),
        ("mlp_pruned_palettized_ios18", "iOS18", [("prune", prune), ("palettize", pal_t)],
         ["constexpr_lut_to_sparse", "constexpr_sparse_to_dense"], "inputs"),
    ]
    for name, tgt, steps, expect_ops, form in variants:
        ml = bases[tgt]
        comp_steps = []
        for i, (kind, cfg) in enumerate(steps):
            joint = i > 0
            if kind == "linear":
                ml = cto.linear_quantize_weights(ml, C(global_config=cto.OpLinearQuantizerConfig(**cfg)))
            elif kind == "palettize":
                ml = cto.palettize_weights(ml, C(global_config=cto.OpPalettizerConfig(**cfg)),
                                           joint_compression=joint)
            else:
                ml = cto.prune_weights(ml, C(global_config=cto.OpMagnitudePrunerConfig(**cfg)))
            step = {"kind": kind}
            if kind == "prune":
                step["mode"] = "magnitude"
            step.update(cfg)
            if joint:
                step["joint_compression"] = True
            comp_steps.append(step)
        p = save_model(ml, name)
        base = f"mlp_big_fp16_{tgt.lower()}"
        if len(comp_steps) == 1:
            compression = dict(comp_steps[0])
        else:
            compression = {"kind": "+".join(s["kind"] for s in comp_steps), "steps": comp_steps}
        compression.update({"from": base, "expected_ops": expect_ops, "param_form": form,
                            "weight_threshold": 2048})
        data, err = entry_data(name, p)
        # the fp32 module's output differs from the compressed package's by the compression
        # error: a loose bound (1.25 x measured + the fp16 bound) instead of the fp16 default
        fp16_tol = default_tolerance("fp16", data[0])
        data[0]["tolerance"] = {"atol": float("%.3g" % (1.25 * err["max_abs"] + fp16_tol["atol"])),
                                "rtol": fp16_tol["rtol"]}
        e = record(name, p, "mlp_big", "fp16", data,
                   f"{base} compressed with coremltools.optimize.coreml ({' then '.join(s['kind'] for s in comp_steps)}); "
                   f"all 4 linear weights are compressed (biases are 1-D and skipped). constexpr params "
                   f"written as {form}. Data: 'reference' = fp32 torch module (includes compression "
                   f"error), 'package_weights' = the same torch module run in fp32 with the package's "
                   f"decompressed weights and fp16 biases (isolates runtime error).",
                   compression=compression,
                   extra={"reference_stats": stats, "package_weights_error": err})
        counts = e["coremltools_op_counts"]["main"]
        for op in expect_ops:
            assert counts.get(op) == 4, (name, counts)
        check_param_form(p, form)
        # guard against silent no-ops (numpy <= 2.3 made fp16 magnitude pruning prune nothing)
        for w, _ in package_linear_weights(p):
            kinds = [s["kind"] for s in comp_steps]
            if "prune" in kinds:
                assert 0.45 <= float(np.mean(w == 0)) <= 0.55, (name, float(np.mean(w == 0)))
            if "palettize" in kinds:
                assert len(np.unique(w)) <= 16 * (16 if cfg.get("granularity") == "per_grouped_channel" else 1) + 1, name


def check_param_form(path, form):
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    fn = spec.mlProgram.functions["main"]
    for op in fn.block_specializations[fn.opset].operations:
        if op.type.startswith("constexpr_"):
            attrs = [k for k in op.attributes if k != "name"]
            got = "inputs" if (op.inputs and not attrs) else "attributes" if (attrs and not op.inputs) else "mixed"
            assert got == form, (path, op.type, got, form)


# ---------------------------------------------------------------------------------------------
# external (compiled) models: listed, not regenerated


def record_external():
    ext = FIX / "external" / "add_model.mlmodelc"
    if not ext.is_dir():
        log("  fixtures/external/add_model.mlmodelc missing: skipped (see fixtures/README.md)")
        return
    desc = interop.describe_mlmodelc(str(ext))
    rng = seed_for("add_model")
    # values exactly representable in fp16, so the fp32 product is the exact reference
    x = randn(rng, 1, 10).astype(np.float16).astype(np.float32)
    y = randn(rng, 1, 10).astype(np.float16).astype(np.float32)
    io_paths = save_io("add_model", {"x": x, "y": y}, {"var_3": x * y})
    hist = desc.get("op_type_histogram") or {}
    counts = {}
    for k, v in hist.items():
        op = k.split(".", 1)[1] if "." in k else k
        counts[op] = counts.get(op, 0) + v
    MANIFEST.append({
        "name": "external_add_model",
        "path": rel(ext),
        "format": "mlmodelc",
        "network": "add_model",
        "precision": "fp16",
        "deployment_target": desc["deployment_target"],
        "spec_version": desc["spec_version"],
        "model_type": "mlProgram",
        "functions": ["main"],
        "default_function": "main",
        "inputs": [{k: f[k] for k in ("name", "dtype", "shape", "flexible")} for f in desc["inputs"]],
        "outputs": [{k: f[k] for k in ("name", "dtype", "shape")} for f in desc["outputs"]],
        "states": [],
        "compression": None,
        "data": [main_data(io_paths, tolerance={"atol": 1e-3, "rtol": 1e-3})],
        "coremltools_op_counts": {"main": dict(sorted(counts.items()))},
        "opsets": {"main": "ios16"},
        "notes": "Compiled model copied from apple/coremltools 9.0 (coremltools/modelrunner/ModelRunner/"
                 "add_model.mlmodelc, BSD-3-Clause, see external/NOTICE). Despite its name it computes "
                 "var_3 = mul(x, y) in fp16 (inputs/outputs Float16 [1,10]). Compiled by coremlc 3402.4.1 "
                 "from a coremltools 8.1 / torch 2.5.1 conversion; no weights/ directory. coremltools "
                 "cannot open .mlmodelc on Linux: inputs/outputs come from metadata.json, op counts from "
                 "its mlProgramOperationTypeHistogram ('Ios16.mul' -> 'mul'). Reference data computed "
                 "with numpy (fp16-exact inputs).",
    })
    log(f"  external_add_model: {counts}")


# =========================================================================================


class TinyClassifier(nn.Module):
    """8 features -> 16 -> 3 class probabilities (softmax)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=-1)


def build_classifier():
    """Two classifiers (ct.ClassifierConfig) over one tiny MLP: string labels (iOS15) and
    int64 labels (iOS16). The references: the predicted label (numpy unicode or int64
    scalar) and the probabilities in label order (fp32, the dictionary's values)."""
    rng = seed_for("classifier")
    m = TinyClassifier().eval()
    while True:  # an input whose predicted class is not the first (a default would pass)
        inputs = {"x": randn(rng, 1, 8, scale=2.0)}
        with torch.no_grad():
            probs = m(to_torch(inputs["x"])).numpy().astype(np.float32).reshape(-1)
        best = int(np.argmax(probs))
        if best != 0 and probs[best] > 0.5:
            break
    tr = trace(m, inputs)
    for name, labels, tgt in [
        ("classifier_str_fp32_ios15", ["cat", "dog", "bird"], "iOS15"),
        ("classifier_int_fp32_ios16", [7, 3, 11], "iOS16"),
    ]:
        mlmodel = ct.convert(
            tr,
            inputs=tensor_types(inputs, False),
            classifier_config=ct.ClassifierConfig(labels),
            convert_to="mlprogram",
            compute_precision=PRECISIONS["fp32"],
            minimum_deployment_target=TARGETS[tgt],
        )
        desc = mlmodel.get_spec().description
        label_name = desc.predictedFeatureName
        probs_name = desc.predictedProbabilitiesName
        label = np.array(labels[best]) if isinstance(labels[0], str) else np.array(labels[best], dtype=np.int64)
        base = Path("data") / name
        io_paths = {
            "inputs": {"x": save_npy(base / "inputs" / "x.npy", inputs["x"])},
            "outputs": {
                label_name: save_scalar_npy(base / "outputs" / f"{label_name}.npy", label),
                probs_name: save_npy(base / "outputs" / f"{probs_name}.npy", probs),
            },
        }
        data = [main_data(io_paths, tolerance={"atol": 1e-4, "rtol": 1e-3})]
        p = save_model(mlmodel, name)
        record(name, p, "classifier", "fp32", data,
               f"linear(8->16)+relu+linear(16->3)+softmax converted with ct.ClassifierConfig({labels!r}): "
               f"the program ends in classify; outputs {label_name!r} (the predicted label) and "
               f"{probs_name!r} (dictionary label -> probability). References: the label as a numpy "
               f"{label.dtype} scalar, the probabilities as fp32 [3] in label order. I/O fp32.",
               extra={"labels": labels})


# =========================================================================================
# NeuralNetwork (legacy) fixtures: coremltools 9.0 `convert_to="neuralnetwork"` from PyTorch,
# and NeuralNetworkBuilder specs for layers the converter does not emit. See
# docs/neuralnetwork.md.


def save_nn(spec_or_model, name):
    """Save a NeuralNetwork model (MLModel or spec) as fixtures/models/<name>.mlmodel."""
    path = FIX / "models" / f"{name}.mlmodel"
    if path.exists():
        path.unlink()
    if isinstance(spec_or_model, ct.models.MLModel):
        spec_or_model.save(str(path))
    else:
        path.write_bytes(spec_or_model.SerializeToString())
    normalize(path)
    return path


def convert_nn(module, inputs, output_names, **kw):
    return ct.convert(
        trace(module, inputs),
        inputs=kw.pop("ct_inputs", None) or [ct.TensorType(name=k, shape=v.shape) for k, v in inputs.items()],
        outputs=[ct.TensorType(name=n) for n in output_names],
        convert_to="neuralnetwork",
        **kw,
    )


def nn_record(name, path, network, data, notes, extra=None):
    data = [dict(d, tolerance={"atol": 1e-4, "rtol": 1e-3}) if "tolerance" not in d else d for d in data]
    return record(name, path, network, "fp32", data, notes, extra=extra)


class NNConvNet(nn.Module):
    """Conv + BatchNorm + ReLU6, twice, max pool, global average pool, linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.b2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)
        for bn in (self.b1, self.b2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = F.relu6(self.b1(self.c1(x)))
        x = F.max_pool2d(x, 2)
        x = F.relu6(self.b2(self.c2(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        layers = []
        if t != 1:
            layers += [nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6()]
        layers += [nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
                   nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2Small(nn.Module):
    """torchvision's MobileNetV2 block structure at reduced width (8..32 channels, 7 blocks,
    last conv 64) for a 32x32 input: depthwise/pointwise convolutions, ReLU6 (clip), residual
    adds, global pooling, linear."""

    def __init__(self):
        super().__init__()
        cfg = [(1, 8, 1, 1), (4, 12, 2, 2), (4, 16, 2, 2), (4, 24, 1, 1), (4, 32, 1, 2)]
        layers = [nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()]
        cin = 8
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class NNRecurrent(nn.Module):
    """An LSTM over a sequence with the last step through a linear layer, and a bidirectional
    LSTM's whole sequence. (coremltools lowers nn.GRU to a `loop` layer, so the GRU fixture is
    built with NeuralNetworkBuilder.add_gru instead.)"""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16)
        self.bi = nn.LSTM(8, 6, bidirectional=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):  # x [seq, 1, 8]
        y, _ = self.lstm(x)
        z, _ = self.bi(torch.tanh(x))
        return self.fc(y[-1]), z


class NNTransformer(nn.Module):
    """One pre-LN attention block written out (q, k, v projections, batched matmuls,
    softmax over the last axis, output projection) and a GELU MLP."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.h = heads
        self.ln1 = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.f1 = nn.Linear(d, 2 * d)
        self.f2 = nn.Linear(2 * d, d)

    def forward(self, x):  # [1, T, d]
        b, t, d = x.shape
        hd = d // self.h
        y = self.ln1(x)
        q = self.q(y).reshape(b, t, self.h, hd).permute(0, 2, 1, 3)
        k = self.k(y).reshape(b, t, self.h, hd).permute(0, 2, 3, 1)
        v = self.v(y).reshape(b, t, self.h, hd).permute(0, 2, 1, 3)
        a = torch.softmax(torch.matmul(q, k) / hd ** 0.5, dim=-1)
        z = torch.matmul(a, v).permute(0, 2, 1, 3).reshape(b, t, d)
        x = x + self.o(z)
        return x + self.f2(F.gelu(self.f1(self.ln2(x))))


class NNResample(nn.Module):
    """Nearest 2x upsampling, bilinear upsampling with align_corners True and False, and a
    transposed convolution (padding 1, output_padding 1)."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):  # [1, 4, 6, 6]
        a = F.interpolate(x, scale_factor=2, mode="nearest")
        b = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        c = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        d = self.up(x)
        return torch.cat([a, b, c], dim=1), d


class NNImageNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(torch.relu(self.c(x)), 1).flatten(1))


def write_png(path, rgb):
    """A minimal 8-bit RGB PNG (no PIL in the venv): uint8 [H, W, 3]."""
    import struct

    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(t, data):
        c = struct.pack(">I", len(data)) + t + data
        return c + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    p = FIX / path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(png)
    return rel(p)


def build_nn():
    # 1. conv net with batchnorm and ReLU6
    rng = seed_for("nn_convnet")
    m = NNConvNet().eval()
    inputs = {"x": randn(rng, 1, 3, 16, 16)}
    ref = run_torch(m, inputs, ["y"])
    p = save_nn(convert_nn(m, inputs, ["y"]), "nn_convnet_fp32")
    nn_record("nn_convnet_fp32", p, "nn_convnet", [main_data(save_io("nn_convnet", inputs, ref))],
              "Conv+BatchNorm+ReLU6 x2, max pool, global average pool, linear; convert_to='neuralnetwork'.")
    # The same network as an ML Program (fp16 compute, iOS15): analyze must place both alike.
    ml = convert(trace(m, inputs), inputs, ["y"], "fp16", "iOS15", io_fp32=True)
    p = save_model(ml, "nn_convnet_mlprogram_fp16_ios15")
    record("nn_convnet_mlprogram_fp16_ios15", p, "nn_convnet", "fp16", [main_data(save_io("nn_convnet", inputs, ref))],
           "nn_convnet_fp32's network converted to an ML Program (fp16 compute, iOS15, fp32 I/O): the "
           "counterpart for the NeuralNetwork/ML Program placement comparison.")

    # 2. reduced-width MobileNetV2
    rng = seed_for("nn_mobilenetv2")
    m = MobileNetV2Small().eval()
    inputs = {"x": randn(rng, 1, 3, 32, 32)}
    ref = run_torch(m, inputs, ["y"])
    ml = convert_nn(m, inputs, ["y"])
    p = save_nn(ml, "nn_mobilenetv2_fp32")
    nn_record("nn_mobilenetv2_fp32", p, "nn_mobilenetv2", [main_data(save_io("nn_mobilenetv2", inputs, ref))],
              "MobileNetV2 block structure at reduced width (random weights, 32x32 input): depthwise "
              "convolutions, clip (ReLU6), residual add, pooling, innerProduct.")

    # 3. recurrent
    rng = seed_for("nn_recurrent")
    m = NNRecurrent().eval()
    inputs = {"x": randn(rng, 5, 1, 8)}
    ref = run_torch(m, inputs, ["y", "z"])
    try:
        ml = convert_nn(m, inputs, ["y", "z"])
        p = save_nn(ml, "nn_recurrent_fp32")
        nn_record("nn_recurrent_fp32", p, "nn_recurrent", [main_data(save_io("nn_recurrent", inputs, ref))],
                  "nn.LSTM(8,16) -> last step -> Linear(16,4); bidirectional nn.LSTM(8,6) over tanh(x), whole sequence.")
    except Exception as e:  # noqa: BLE001
        log(f"  nn_recurrent: the converter failed: {e}")

    # 4. transformer block
    rng = seed_for("nn_transformer")
    m = NNTransformer().eval()
    inputs = {"x": randn(rng, 1, 8, 32)}
    ref = run_torch(m, inputs, ["y"])
    p = save_nn(convert_nn(m, inputs, ["y"]), "nn_transformer_fp32")
    nn_record("nn_transformer_fp32", p, "nn_transformer", [main_data(save_io("nn_transformer", inputs, ref))],
              "pre-LN attention block (batchedMatMul, softmaxND, layer norm, GELU MLP).")

    # 5. resampling
    rng = seed_for("nn_resample")
    m = NNResample().eval()
    inputs = {"x": randn(rng, 1, 4, 6, 6)}
    ref = run_torch(m, inputs, ["y", "d"])
    p = save_nn(convert_nn(m, inputs, ["y", "d"]), "nn_resample_fp32")
    nn_record("nn_resample_fp32", p, "nn_resample", [main_data(save_io("nn_resample", inputs, ref))],
              "nearest and bilinear (align_corners True/False) 2x upsampling, ConvTranspose2d(stride 2, "
              "padding 1, output_padding 1).")

    # 6. classifier with string labels
    rng = seed_for("nn_classifier")
    m = TinyClassifier().eval()
    while True:
        inputs = {"x": randn(rng, 1, 8, scale=2.0)}
        with torch.no_grad():
            probs = m(to_torch(inputs["x"])).numpy().astype(np.float32).reshape(-1)
        best = int(np.argmax(probs))
        if best != 0 and probs[best] > 0.5:
            break
    labels = ["cat", "dog", "bird"]
    ml = ct.convert(trace(m, inputs), inputs=[ct.TensorType(name="x", shape=(1, 8))],
                    classifier_config=ct.ClassifierConfig(labels), convert_to="neuralnetwork")
    desc = ml.get_spec().description
    base = Path("data") / "nn_classifier"
    io_paths = {"inputs": {"x": save_npy(base / "inputs" / "x.npy", inputs["x"])},
                "outputs": {desc.predictedFeatureName: save_scalar_npy(base / "outputs" / f"{desc.predictedFeatureName}.npy", np.array(labels[best])),
                            desc.predictedProbabilitiesName: save_npy(base / "outputs" / f"{desc.predictedProbabilitiesName}.npy", probs)}}
    p = save_nn(ml, "nn_classifier_fp32")
    nn_record("nn_classifier_fp32", p, "nn_classifier", [main_data(io_paths)],
              "neuralNetworkClassifier (string labels cat, dog, bird) from ct.ClassifierConfig.",
              extra={"labels": labels})

    # 7. two-stage pipeline of neural networks
    rng = seed_for("nn_pipeline")
    m1 = nn.Sequential(nn.Linear(6, 12), nn.Tanh()).eval()
    m2 = nn.Sequential(nn.Linear(12, 4), nn.Sigmoid()).eval()
    x = randn(rng, 1, 6)
    with torch.no_grad():
        hmid = m1(to_torch(x))
        y = m2(hmid).numpy().astype(np.float32)
    s1 = convert_nn(m1, {"x": x}, ["h"])
    s2 = convert_nn(m2, {"h": hmid.numpy()}, ["y"])
    from coremltools.models.pipeline import Pipeline

    pipe = Pipeline(input_features=[("x", ct.models.datatypes.Array(1, 6))],
                    output_features=[("y", ct.models.datatypes.Array(1, 4))])
    pipe.add_model(s1.get_spec())
    pipe.add_model(s2.get_spec())
    pipe.spec.specificationVersion = max(s1.get_spec().specificationVersion, s2.get_spec().specificationVersion)
    p = save_nn(pipe.spec, "nn_pipeline_fp32")
    nn_record("nn_pipeline_fp32", p, "nn_pipeline", [main_data(save_io("nn_pipeline", {"x": x}, {"y": y}))],
              "pipeline of two neural networks: Linear(6,12)+tanh -> feature h -> Linear(12,4)+sigmoid.")

    # 8. image input with scaler preprocessing (RGB, scale 1/127.5, bias -1)
    rng = seed_for("nn_image")
    m = NNImageNet().eval()
    pix = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)  # H, W, RGB
    png = write_png(Path("data") / "nn_image" / "inputs" / "image.png", pix)
    x = pix.transpose(2, 0, 1)[None].astype(np.float32)  # [1, 3, H, W] pixel values
    scale, bias = 1 / 127.5, -1.0
    with torch.no_grad():
        y = m(to_torch(x * scale + bias)).numpy().astype(np.float32)
    ml = ct.convert(trace(m, {"x": x}), inputs=[ct.ImageType(name="image", shape=(1, 3, 12, 10), scale=scale,
                    bias=[bias] * 3, color_layout=ct.colorlayout.RGB)],
                    outputs=[ct.TensorType(name="y")], convert_to="neuralnetwork")
    p = save_nn(ml, "nn_image_fp32")
    io_paths = save_io("nn_image", {"image": x}, {"y": y})
    nn_record("nn_image_fp32", p, "nn_image", [main_data(io_paths)],
              "image input (RGB 10x12) with NeuralNetworkImageScaler preprocessing (scale 1/127.5, bias -1); "
              "inputs/image.npy holds the pixel values as fp32 [1,3,12,10] (RGB), inputs/image.png the same image.",
              extra={"image_files": {"image": png}})

    build_nn_builder()
    build_nn_gru()
    build_nn_quantized()


def _builder_spec(inputs, outputs, rank5=True):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    return NeuralNetworkBuilder(
        [(n, datatypes.Array(*s)) for n, s in inputs],
        [(n, datatypes.Array(*s) if s else None) for n, s in outputs],
        disable_rank5_shape_mapping=not rank5,
    )


def build_nn_builder():
    """NeuralNetworkBuilder specs with the rank-5 blob mapping (specification versions 1 and
    3), references from PyTorch/NumPy."""
    from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: F401

    # A: spec 1 classic layers on x [C=4, H=6, W=6]
    rng = seed_for("nn_rank5_classic")
    x = randn(rng, 4, 6, 6)
    w1 = randn(rng, 6, 4, 3, 3, scale=0.3)
    b1 = randn(rng, 6, scale=0.1)
    alpha = np.abs(randn(rng, 6, scale=0.2))
    wd = randn(rng, 6, 2, 2, 2, scale=0.3)  # deconv: [C_in, C_out/groups, kH, kW]
    fcw = randn(rng, 5, 2 * 3 * 3, scale=0.2)
    fcb = randn(rng, 5, scale=0.1)
    b = _builder_spec([("x", (4, 6, 6))], [("y", (5,)), ("z", None)])
    b.add_convolution("conv", kernel_channels=4, output_channels=6, height=3, width=3, stride_height=1,
                      stride_width=1, border_mode="same", groups=1, W=w1.transpose(2, 3, 1, 0), b=b1,
                      has_bias=True, input_name="x", output_name="c")
    b.add_activation("prelu", "PRELU", "c", "p", params=alpha)
    b.add_lrn("lrn", "p", "l", alpha=1e-2, beta=0.75, local_size=3, k=1.0)
    b.add_pooling("pool", height=2, width=2, stride_height=2, stride_width=2, layer_type="AVERAGE",
                  padding_type="VALID", input_name="l", output_name="q")
    b.add_convolution("deconv", kernel_channels=6, output_channels=2, height=2, width=2, stride_height=2,
                      stride_width=2, border_mode="valid", groups=1, W=wd.transpose(2, 3, 0, 1), b=None,
                      has_bias=False, is_deconv=True, input_name="q", output_name="d")
    b.add_padding("pad", left=1, right=0, top=0, bottom=1, padding_type="reflection", input_name="d", output_name="e")
    b.add_pooling("mp", height=3, width=3, stride_height=2, stride_width=2, layer_type="MAX",
                  padding_type="INCLUDE_LAST_PIXEL", input_name="e", output_name="f")
    b.add_flatten("flat", mode=0, input_name="f", output_name="g")
    b.add_inner_product("fc", W=fcw, b=fcb, input_channels=fcw.shape[1], output_channels=5, has_bias=True,
                        input_name="g", output_name="h")
    b.add_softmax("sm", "h", "y")
    b.add_permute("perm", (0, 2, 3, 1), "f", "z")
    spec = b.spec
    spec.specificationVersion = 1
    spec.description.output[1].type.multiArrayType.SetInParent()
    with torch.no_grad():
        t = torch.from_numpy(x[None])
        c = F.conv2d(t, torch.from_numpy(w1), torch.from_numpy(b1), padding=1)
        pr = torch.where(c > 0, c, c * torch.from_numpy(alpha)[None, :, None, None])
        lr = F.local_response_norm(pr, 3, alpha=1e-2, beta=0.75, k=1.0)
        q = F.avg_pool2d(lr, 2)
        d = F.conv_transpose2d(q, torch.from_numpy(wd), stride=2)
        e = F.pad(d, (1, 0, 0, 1), mode="reflect")
        f = F.max_pool2d(e, 3, 2, ceil_mode=True)
        g = f.reshape(1, -1)
        h = g @ torch.from_numpy(fcw).T + torch.from_numpy(fcb)
        y = torch.softmax(h, -1).reshape(5).numpy()
        z = f.permute(0, 2, 3, 1)[0].numpy()  # [C,H,W] -> permute (0,2,3,1) over [Seq,C,H,W]
    p = save_nn(spec, "nn_rank5_classic_spec1")
    nn_record("nn_rank5_classic_spec1", p, "nn_rank5_classic",
              [main_data(save_io("nn_rank5_classic", {"x": x}, {"y": y, "z": z}))],
              "NeuralNetworkBuilder, rank-5 blob mapping, specification version 1: convolution (same), "
              "PReLU, LRN, average pooling, deconvolution, reflection padding, max pooling INCLUDE_LAST_PIXEL "
              "(ceil mode), flatten, innerProduct, softmax, permute. Reference: PyTorch functional ops.")

    # B: spec 3 elementwise and shape layers on [C] vectors and [C,H,W] blobs
    rng = seed_for("nn_rank5_misc")
    a = randn(rng, 3, 4, 5)
    v = randn(rng, 3, 1, 1)
    b = _builder_spec([("a", (3, 4, 5)), ("v", (3, 1, 1))], [("y", (6, 4, 5)), ("r", None), ("u", None)])
    b.add_elementwise("add", ["a", "v"], "s", mode="ADD")
    b.add_elementwise("mul", ["s", "a"], "m", mode="MULTIPLY")
    b.add_unary("un", "m", "k", mode="abs")
    b.add_unary("un2", "k", "k2", mode="sqrt", shift=1.0)
    b.add_activation("elu", "ELU", "k2", "k3", params=0.7)
    b.add_concat_nd("cat", ["k3", "a"], "y", axis=0) if False else b.add_elementwise("cat", ["k3", "a"], "y", mode="CONCAT")
    b.add_reduce("red", "a", "r", axis="HW", mode="avg")
    b.add_upsample("up", 2, 2, "a", "u", mode="NN")
    spec = b.spec
    spec.specificationVersion = 3
    for o in spec.description.output[1:]:
        o.type.multiArrayType.SetInParent()
    s_ = a + v
    m_ = s_ * a
    k2 = np.sqrt(np.abs(m_) + 1.0)
    k3 = np.where(k2 > 0, k2, 0.7 * (np.exp(k2) - 1))
    y = np.concatenate([k3, a], 0).astype(np.float32)
    r = a.mean(axis=(1, 2), keepdims=True).astype(np.float32)
    u_ = a.repeat(2, axis=1).repeat(2, axis=2).astype(np.float32)
    p = save_nn(spec, "nn_rank5_misc_spec3")
    nn_record("nn_rank5_misc_spec3", p, "nn_rank5_misc",
              [main_data(save_io("nn_rank5_misc", {"a": a, "v": v}, {"y": y, "r": r, "u": u_}))],
              "NeuralNetworkBuilder, rank-5 blob mapping, specification version 3: broadcasting add, "
              "multiply, unary abs / sqrt(x+1), ELU, channel concat, reduce mean over HW, nearest upsample.")

    # C: spec 4 ND layers (exact array mapping)
    rng = seed_for("nn_nd_layers")
    a = randn(rng, 2, 3, 4)
    bm = randn(rng, 2, 4, 5)
    b = _builder_spec([("a", (2, 3, 4)), ("b", (2, 4, 5))], [("mm", None), ("sm", None), ("t", None), ("rs", None), ("sl", None), ("ln", None)], rank5=False)
    b.add_batched_mat_mul("bmm", ["a", "b"], "mm")
    b.add_softmax_nd("smx", "a", "sm", axis=1)
    b.add_transpose("tr", [2, 0, 1], "a", "t")
    b.add_reduce_sum("rsum", "a", "rs", axes=[1], keepdims=False)
    b.add_slice_static("ss", "a", "sl", begin_ids=[0, 1, 0], end_ids=[2, 3, 4], strides=[1, 1, 2],
                       begin_masks=[True, False, True], end_masks=[True, False, True])
    g = np.linspace(0.5, 1.5, 4).astype(np.float32)
    be = np.linspace(-0.1, 0.1, 4).astype(np.float32)
    b.add_layer_normalization("lnorm", "a", "ln", normalized_shape=[4], gamma=g, beta=be, eps=1e-5)
    spec = b.spec
    spec.specificationVersion = 4
    with torch.no_grad():
        ln = F.layer_norm(torch.from_numpy(a), [4], torch.from_numpy(g), torch.from_numpy(be), 1e-5).numpy()
    e = np.exp(a - a.max(axis=1, keepdims=True))
    outs = {"mm": (a @ bm).astype(np.float32), "sm": (e / e.sum(axis=1, keepdims=True)).astype(np.float32),
            "t": a.transpose(2, 0, 1).copy(), "rs": a.sum(axis=1).astype(np.float32),
            "sl": a[:, 1:3, ::2].copy(), "ln": ln}
    p = save_nn(spec, "nn_nd_layers_spec4")
    nn_record("nn_nd_layers_spec4", p, "nn_nd_layers",
              [main_data(save_io("nn_nd_layers", {"a": a, "b": bm}, outs))],
              "NeuralNetworkBuilder, exact array mapping, specification version 4: batchedMatMul of two "
              "inputs, softmaxND, transpose, reduceSum, sliceStatic, layerNormalization. Reference: NumPy.")


def build_nn_gru():
    """NeuralNetworkBuilder GRU (reset gate applied before the recursion matrix, as
    NeuralNetwork.proto states) and simple recurrent layers over a [Seq=4, 1, C=3, 1, 1]
    sequence; NumPy reference of the proto's equations."""
    rng = seed_for("nn_gru")
    seq, i, h = 4, 3, 5
    x = randn(rng, seq, 1, i, 1, 1)
    W = {k: randn(rng, h, i, scale=0.5) for k in "zro"}
    R = {k: randn(rng, h, h, scale=0.5) for k in "zro"}
    B = {k: randn(rng, h, scale=0.2) for k in "zro"}
    ws, rs, bs = randn(rng, h, i, scale=0.5), randn(rng, h, h, scale=0.5), randn(rng, h, scale=0.2)
    b = _builder_spec([("x", (i,))], [("y", None), ("s", None)])
    b.spec.description.input[0].type.multiArrayType.shape[:] = [seq, 1, i, 1, 1]
    b.add_gru("gru", W_h=[R["z"], R["r"], R["o"]], W_x=[W["z"], W["r"], W["o"]], b=[B["z"], B["r"], B["o"]],
              hidden_size=h, input_size=i, input_names=["x"], output_names=["y", "y_h"], output_all=True,
              activation="TANH", inner_activation="SIGMOID")
    b.add_simple_rnn("rnn", W_h=rs, W_x=ws, b=bs, hidden_size=h, input_size=i, activation="TANH",
                     input_names=["x"], output_names=["s", "s_h"], output_all=False)
    spec = b.spec
    spec.specificationVersion = 1
    for o in spec.description.output:
        o.type.multiArrayType.SetInParent()
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    hp = np.zeros(h)
    ys = []
    for t in range(seq):
        xt = x[t, 0, :, 0, 0].astype(np.float64)
        z = sig(np.clip(W["z"] @ xt + R["z"] @ hp + B["z"], -50, 50))
        r = sig(np.clip(W["r"] @ xt + R["r"] @ hp + B["r"], -50, 50))
        o = np.tanh(np.clip(W["o"] @ xt + R["o"] @ (hp * r) + B["o"], -50, 50))
        hp = (1 - z) * o + z * hp
        ys.append(hp)
    y = np.array(ys, dtype=np.float32).reshape(seq, 1, h, 1, 1)
    sp = np.zeros(h)
    for t in range(seq):
        sp = np.tanh(ws @ x[t, 0, :, 0, 0] + rs @ sp + bs)
    s_ = sp.astype(np.float32).reshape(h, 1, 1)  # Seq = Batch = 1: returned as [C, H, W]
    p = save_nn(spec, "nn_gru_spec1")
    nn_record("nn_gru_spec1", p, "nn_gru", [main_data(save_io("nn_gru", {"x": x}, {"y": y, "s": s_}))],
              "NeuralNetworkBuilder: gru (sequence output) and simpleRecurrent (last output) over x "
              "[Seq 4, Batch 1, C 3, 1, 1], rank-5 mapping, specification version 1. Reference: NumPy "
              "evaluation of NeuralNetwork.proto's GRU and RNN equations.")


def build_nn_quantized():
    """coremltools.models.neural_network.quantization_utils.quantize_weights of
    nn_convnet_fp32: fp16, 8-bit linear, 4-bit k-means LUT, 3-bit linear LUT. References: the
    PyTorch network run with the weights coremltools itself dequantizes from each model."""
    from coremltools.models.neural_network import quantization_utils as qu
    from coremltools.models.neural_network.quantization_utils import _dequantize_nn_spec

    import nn_oracle

    nn_oracle.patch_kmeans_lut()

    src = ct.models.MLModel(str(FIX / "models" / "nn_convnet_fp32.mlmodel"), skip_model_load=True)
    x = np.load(FIX / "data" / "nn_convnet" / "inputs" / "x.npy")
    for name, kw in [("nn_convnet_fp16", dict(nbits=16)),
                     ("nn_convnet_linear8", dict(nbits=8, quantization_mode="linear")),
                     ("nn_convnet_kmeans4", dict(nbits=4, quantization_mode="kmeans")),
                     ("nn_convnet_lut3", dict(nbits=3, quantization_mode="linear_lut"))]:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            q = qu.quantize_weights(src, **kw)
        spec = q.get_spec() if isinstance(q, ct.models.MLModel) else q
        p = save_nn(spec, name)
        # Reference: run the dequantized spec's weights through numpy layer by layer.
        deq = ct.models.MLModel(str(p), skip_model_load=True).get_spec()
        if kw["nbits"] == 16:
            for layer in deq.neuralNetwork.layers:
                for f in ("weights", "bias", "gamma", "beta", "mean", "variance"):
                    p_ = getattr(layer, layer.WhichOneof("layer"))
                    if hasattr(p_, f) and len(getattr(p_, f).float16Value):
                        wp = getattr(p_, f)
                        wp.floatValue.extend(np.frombuffer(wp.float16Value, dtype="<f2").astype(np.float32))
                        wp.float16Value = b""
        else:
            _dequantize_nn_spec(deq.neuralNetwork)
        y = run_nn_numpy(deq.neuralNetwork, {"x": x})["y"]
        data = [main_data({"inputs": {"x": rel(FIX / "data" / "nn_convnet" / "inputs" / "x.npy")},
                           "outputs": {"y": save_npy(Path("data") / name / "outputs" / "y.npy", y)}})]
        nn_record(name, p, "nn_convnet", data,
                  f"quantize_weights(nn_convnet_fp32, {kw}); reference: the network evaluated in NumPy "
                  "with coremltools' own dequantized weights (_dequantize_nn_spec).",
                  extra={"nn_quantization": kw})


def run_nn_numpy(nn_spec, feeds):
    """A NumPy evaluator for the layers nn_convnet uses (exact-array mapping), as a reference
    for quantized weights dequantized by coremltools."""
    env = {k: v.astype(np.float64) for k, v in feeds.items()}
    for layer in nn_spec.layers:
        t = layer.WhichOneof("layer")
        x = env[layer.input[0]] if layer.input else None
        p = getattr(layer, t)
        if t == "convolution":
            w = np.array(p.weights.floatValue, dtype=np.float64).reshape(p.outputChannels, p.kernelChannels, *p.kernelSize)
            bias = np.array(p.bias.floatValue, dtype=np.float64) if p.hasBias else None
            pads = [0, 0, 0, 0]
            if p.WhichOneof("ConvolutionPaddingType") == "valid":
                ba = p.valid.paddingAmounts.borderAmounts
                if len(ba) == 2:
                    pads = [ba[0].startEdgeSize, ba[0].endEdgeSize, ba[1].startEdgeSize, ba[1].endEdgeSize]
            with torch.no_grad():
                tx = F.pad(torch.from_numpy(x), (pads[2], pads[3], pads[0], pads[1]))
                y = F.conv2d(tx, torch.from_numpy(w), None if bias is None else torch.from_numpy(bias),
                             stride=tuple(p.stride) or 1, dilation=tuple(p.dilationFactor) or 1, groups=p.nGroups or 1).numpy()
        elif t == "batchnorm":
            g, bb = np.array(p.gamma.floatValue), np.array(p.beta.floatValue)
            mu, var = np.array(p.mean.floatValue), np.array(p.variance.floatValue)
            sh = (1, -1, 1, 1)
            y = (x - mu.reshape(sh)) / np.sqrt(var.reshape(sh) + p.epsilon) * g.reshape(sh) + bb.reshape(sh)
        elif t == "clip":
            y = np.clip(x, p.minVal, p.maxVal)
        elif t == "activation":
            a = p.WhichOneof("NonlinearityType")
            if a == "ReLU":
                y = np.maximum(x, 0)
            elif a == "linear":
                y = p.linear.alpha * x + p.linear.beta
            else:
                raise NotImplementedError(f"run_nn_numpy: activation {a}")
        elif t == "unary" and p.type == 7:  # THRESHOLD
            y = np.maximum(x * (p.scale or 1.0) + p.shift, p.alpha)
        elif t == "pooling":
            with torch.no_grad():
                if p.globalPooling:
                    y = x.mean(axis=(2, 3), keepdims=True) if p.type == 1 else x.max(axis=(2, 3), keepdims=True)
                else:
                    y = F.max_pool2d(torch.from_numpy(x), tuple(p.kernelSize), tuple(p.stride)).numpy()
        elif t == "reduceMean":
            y = x.mean(axis=tuple(p.axes), keepdims=p.keepDims)
        elif t in ("reshapeStatic", "flattenTo2D", "squeeze", "expandDims"):
            if t == "reshapeStatic":
                y = x.reshape(list(p.targetShape))
            elif t == "squeeze":
                y = np.squeeze(x, axis=tuple(p.axes)) if not p.squeezeAll else np.squeeze(x)
            elif t == "expandDims":
                y = np.expand_dims(x, tuple(p.axes))
            else:
                y = x.reshape(int(np.prod(x.shape[:p.axis])), -1)
        elif t == "innerProduct":
            w = np.array(p.weights.floatValue).reshape(p.outputChannels, p.inputChannels)
            y = x @ w.T + (np.array(p.bias.floatValue) if p.hasBias else 0)
        elif t == "batchedMatmul":
            w = np.array(p.weights.floatValue).reshape(p.weightMatrixSecondDimension, p.weightMatrixFirstDimension)
            y = x @ w.T + (np.array(p.bias.floatValue) if p.hasBias else 0)
        else:
            raise NotImplementedError(f"run_nn_numpy: layer {t}")
        env[layer.output[0]] = y
    return {k: v.astype(np.float32) for k, v in env.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="build only these builders (manifest then partial)")
    ap.add_argument("--merge", action="store_true",
                    help="with --only: put the built entries into manifest.json (replacing entries of "
                         "the same name, appending new ones) and leave every other fixture as it is")
    args = ap.parse_args()

    builders = [
        ("convnet", build_convnet),
        ("mlp", build_mlp),
        ("transformer", build_transformer),
        ("decoder", build_decoder),
        ("lstm", build_lstm),
        ("two_io", build_two_io),
        ("flexible", build_flexible),
        ("stateful", build_stateful),
        ("multifunction", build_multifunction),
        ("neuralnetwork", build_neuralnetwork),
        ("control_flow", build_control_flow),
        ("mlp_big", build_mlp_big),
        ("classifier", build_classifier),
        ("nn", build_nn),
    ]
    if args.only:
        builders = [b for b in builders if b[0] in args.only]
    else:
        for d in ("models", "data"):
            if (FIX / d).exists():
                shutil.rmtree(FIX / d)
    (FIX / "models").mkdir(parents=True, exist_ok=True)
    (FIX / "data").mkdir(parents=True, exist_ok=True)

    for bname, fn in builders:
        log(f"building {bname}")
        fn()
    if not args.only:
        record_external()

    manifest = {
        "generator": {
            "script": "scripts/make_fixtures.py",
            "coremltools": ct.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": "%d.%d.%d" % sys.version_info[:3],
        },
        "fixtures": MANIFEST,
    }
    if args.only and args.merge:
        old = json.loads((FIX / "manifest.json").read_text())
        built = {e["name"]: e for e in MANIFEST}
        merged = [built.pop(e["name"], e) for e in old["fixtures"]] + list(built.values())
        manifest = {"generator": old["generator"], "fixtures": merged}
    out = FIX / ("manifest.json" if not args.only or args.merge else "manifest.partial.json")
    out.write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"wrote {rel(out)} ({len(MANIFEST)} fixtures)")


if __name__ == "__main__":
    main()
