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
        "coremltools_op_counts": interop.op_counts_from_spec(spec),
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
