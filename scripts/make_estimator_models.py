#!/usr/bin/env python3
"""Build the architectures behind published Core ML latencies, estimate them with
`anekit analyze`, and write the comparison (estimate vs published, error per anchor).

    scripts/setup-python.sh --with-torch
    cargo build -p anekit-cli
    .venv/bin/python scripts/make_estimator_models.py [--anekit target/debug/anekit] [--force]

The models are built from their published architecture descriptions in PyTorch with random
weights (anekit's estimate does not depend on the weight values; ANEForge's direct path was
measured to, see docs/analyze.md on ViT-B/16), converted by coremltools 9.0 to fp16
ML Programs, and written to target/estimator-models/ (ignored by git; the FastViT-MA36 package
alone is ~60 MB). Only the results are committed: docs/analyze-estimates.json and the table
between the markers in docs/analyze.md.

Architectures (inference form, i.e. after FastViT's structural reparameterisation):
- distilbert_ane: DistilBERT-base (6 layers, d 768, 12 heads, FFN 3072, vocab 30522) written
  the way apple/ml-ane-transformers writes it: (B, C, 1, S) layout, 1x1 convs, per-head
  einsum attention (SPLIT_EINSUM), LayerNorm over channels; sequence 128; SST-2 head.
- distilbert_linear: the same network in the usual (B, S, C) form with nn.Linear and batched
  multi-head attention (the "baseline" of Apple's article).
- fastvit_{t8,t12,s12,sa12,sa24,sa36,ma36}: apple/ml-fastvit at 256x256 (T8: layers 2-2-4-2,
  widths 48-96-192-384, MLP ratio 3, RepMixer everywhere; T12: 2-2-6-2, 64-128-256-512, ratio
  3; S12: as T12 with ratio 4; SA12/SA24/SA36: 2-2-6-2 / 4-4-12-4 / 6-6-18-6 at
  64-128-256-512, ratio 4, attention and conditional positional encoding in the last stage;
  MA36: 6-6-18-6, 76-152-304-608, ratio 4, attention last), reparameterised. The ml-fastvit
  README's model zoo (all seven on an iPhone 12 Pro) and the Hugging Face cards (T8 and MA36
  on an iPhone 12 Pro Max and an M3 Max) are separate sources; every point of both is a row.
- whisper_{tiny,base,small,medium}_encoder: openai/whisper AudioEncoder (tiny: d 384, 6 heads,
  4 layers; base: 512, 8, 6; small: 768, 12, 12; medium: 1024, 16, 24), 30 s input (80 x 3000
  mel frames). whisper.cpp's Core ML table (PR #566) has all four sizes on one M1 Pro; every
  one of them is a validation row.
- resnet18: torchvision's ResNet-18 at 224x224 (BasicBlock 2-2-2-2, widths 64-512; coremltools
  folds the batch norms into the convolutions, as ANEForge's `load_resnet18` does).
- minilm_l6: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, d 384, 12 heads, FFN 1536)
  on ANEForge's one sentence, "The Apple Neural Engine is a specialized accelerator for matrix
  math." = 14 WordPiece tokens with [CLS] and [SEP]; mean-pooled and L2-normalised.
- vit_b16: torchvision's ViT-B/16 at 224x224 (197 tokens, 12 layers, d 768, 12 heads, MLP 3072).
- depth_anything_small: Depth Anything small as transformers' DepthAnythingForDepthEstimation
  builds it (DINOv2-S/14: d 384, 6 heads, 12 layers, layer scale; DPT neck from layers 3, 6, 9,
  12: 1x1 projections to 48/96/192/384 channels, x4/x2 transposed convs, a stride-2 conv, 3x3
  convs to 64, four fusion stages of pre-activation residual units with bilinear x2 upsampling;
  head 3x3 conv to 32, bilinear to the input size, 3x3 conv, 1x1 conv to depth) at the 518x392
  input of Apple's Core ML package. Apple's model card lists four devices; all four are rows.

Validation, honestly split: anekit's Neural Engine constants are fitted on micro-benchmarks
only (`cargo run -p anekit-plan --example calibrate`); every row here is a whole model the fit
never saw. Direct-path rows are ANEForge's measured latencies and package energies (its
`device_compare_wattcomplete_results_{M2,M5}.json`, end to end on the e5rt path); Core ML rows
are the published latencies above.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "2")
warnings.simplefilter("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import coremltools as ct  # noqa: E402

logging.getLogger("coremltools").setLevel(logging.ERROR)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "target" / "estimator-models"
DOC = ROOT / "docs" / "analyze.md"
JSON_OUT = ROOT / "docs" / "analyze-estimates.json"

sys.path.insert(0, str(HERE))


def _patch_coremltools_for_numpy24():
    """As in scripts/make_fixtures.py: coremltools 9.0 converts aten::Int of a 1-element
    constant with `int(x.val)`, which numpy 2.4 rejects for rank >= 1; use .item()."""
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


def log(msg):
    print(f"make_estimator_models: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# DistilBERT, ANE form (apple/ml-ane-transformers) and linear form


class LayerNormANE(nn.Module):
    """LayerNorm over the channel axis of a (B, C, 1, S) tensor (ml-ane-transformers)."""

    def __init__(self, c, eps=1e-7):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        zm = x - mean
        denom = (zm.pow(2).mean(dim=1, keepdim=True) + self.eps).rsqrt()
        out = zm * denom
        return (out + self.bias.view(1, -1, 1, 1)) * self.weight.view(1, -1, 1, 1)


class DistilBertANE(nn.Module):
    def __init__(self, vocab=30522, d=768, heads=12, ffn=3072, layers=6, seq=128):
        super().__init__()
        self.d, self.h = d, heads
        self.word = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(512, d)
        self.register_buffer("pos_ids", torch.arange(seq).unsqueeze(0))
        self.emb_ln = nn.LayerNorm(d, eps=1e-7)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(
                nn.ModuleDict(
                    dict(
                        q=nn.Conv2d(d, d, 1),
                        k=nn.Conv2d(d, d, 1),
                        v=nn.Conv2d(d, d, 1),
                        o=nn.Conv2d(d, d, 1),
                        ln1=LayerNormANE(d),
                        f1=nn.Conv2d(d, ffn, 1),
                        f2=nn.Conv2d(ffn, d, 1),
                        ln2=LayerNormANE(d),
                    )
                )
            )
        self.pre = nn.Conv2d(d, d, 1)
        self.cls = nn.Conv2d(d, 2, 1)

    def forward(self, ids):
        x = self.emb_ln(self.word(ids) + self.pos(self.pos_ids))  # (B, S, C)
        x = x.transpose(1, 2).unsqueeze(2)  # (B, C, 1, S)
        dh = self.d // self.h
        scale = dh**-0.5
        for L in self.layers:
            q, k, v = L["q"](x), L["k"](x), L["v"](x)
            mh_q = q.split(dh, dim=1)  # (B, dh, 1, S)
            mh_k = k.transpose(1, 3).split(dh, dim=3)  # (B, S, 1, dh)
            mh_v = v.split(dh, dim=1)
            w = [torch.einsum("bchq,bkhc->bkhq", [qi, ki]) * scale for qi, ki in zip(mh_q, mh_k)]
            w = [wi.softmax(dim=1) for wi in w]
            a = [torch.einsum("bkhq,bchk->bchq", wi, vi) for wi, vi in zip(w, mh_v)]
            a = torch.cat(a, dim=1)
            x = L["ln1"](x + L["o"](a))
            x = L["ln2"](x + L["f2"](F.gelu(L["f1"](x))))
        cls = x[:, :, :, :1]
        return self.cls(F.relu(self.pre(cls))).squeeze(3).squeeze(2)


class DistilBertLinear(nn.Module):
    def __init__(self, vocab=30522, d=768, heads=12, ffn=3072, layers=6, seq=128):
        super().__init__()
        self.d, self.h = d, heads
        self.word = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(512, d)
        self.register_buffer("pos_ids", torch.arange(seq).unsqueeze(0))
        self.emb_ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(
                nn.ModuleDict(
                    dict(
                        q=nn.Linear(d, d),
                        k=nn.Linear(d, d),
                        v=nn.Linear(d, d),
                        o=nn.Linear(d, d),
                        ln1=nn.LayerNorm(d, eps=1e-12),
                        f1=nn.Linear(d, ffn),
                        f2=nn.Linear(ffn, d),
                        ln2=nn.LayerNorm(d, eps=1e-12),
                    )
                )
            )
        self.pre = nn.Linear(d, d)
        self.cls = nn.Linear(d, 2)

    def forward(self, ids):
        x = self.emb_ln(self.word(ids) + self.pos(self.pos_ids))
        b, s, _ = x.shape
        dh = self.d // self.h
        for L in self.layers:
            def heads(t):
                return t.view(b, s, self.h, dh).transpose(1, 2)

            q, k, v = heads(L["q"](x)), heads(L["k"](x)), heads(L["v"](x))
            w = (q @ k.transpose(-1, -2)) * dh**-0.5
            a = (w.softmax(-1) @ v).transpose(1, 2).reshape(b, s, self.d)
            x = L["ln1"](x + L["o"](a))
            x = L["ln2"](x + L["f2"](F.gelu(L["f1"](x))))
        return self.cls(F.relu(self.pre(x[:, 0])))


# --------------------------------------------------------------------------------------
# FastViT (apple/ml-fastvit), reparameterised inference form


def conv_act(cin, cout, k, s=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups), nn.GELU())


class SE(nn.Module):
    def __init__(self, c, r=0.0625):
        super().__init__()
        self.reduce = nn.Conv2d(c, int(c * r), 1)
        self.expand = nn.Conv2d(int(c * r), c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


class ConvFFN(nn.Module):
    def __init__(self, c, ratio):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, 1, 3, groups=c)  # conv + BN folded
        self.fc1 = nn.Conv2d(c, int(c * ratio), 1)
        self.fc2 = nn.Conv2d(int(c * ratio), c, 1)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.dw(x))))


class RepMixerBlock(nn.Module):
    def __init__(self, c, ratio):
        super().__init__()
        self.mixer = nn.Conv2d(c, c, 3, 1, 1, groups=c)  # RepMixer after reparameterisation
        self.ffn = ConvFFN(c, ratio)

    def forward(self, x):
        x = self.mixer(x)
        return x + self.ffn(x)  # layer scale folded into fc2


class AttentionBlock(nn.Module):
    def __init__(self, c, ratio, head_dim=32):
        super().__init__()
        self.norm = nn.BatchNorm2d(c)
        self.h = c // head_dim
        self.qkv = nn.Linear(c, 3 * c, bias=False)
        self.proj = nn.Linear(c, c)
        self.ffn = ConvFFN(c, ratio)

    def forward(self, x):
        b, c, hh, ww = x.shape
        n = hh * ww
        t = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        qkv = self.qkv(t).reshape(b, n, 3, self.h, c // self.h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q * (c // self.h) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        t = self.proj((a @ v).transpose(1, 2).reshape(b, n, c))
        x = x + t.transpose(1, 2).reshape(b, c, hh, ww)
        return x + self.ffn(x)


class PatchEmbed(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.lk = conv_act(cin, cout, 7, 2, groups=cin)  # ReparamLargeKernelConv
        self.pw = conv_act(cout, cout, 1)  # MobileOneBlock 1x1

    def forward(self, x):
        return self.pw(self.lk(x))


class FastViT(nn.Module):
    def __init__(self, layers, dims, ratio, attention_last):
        super().__init__()
        c0 = dims[0]
        self.stem = nn.Sequential(conv_act(3, c0, 3, 2), conv_act(c0, c0, 3, 2, groups=c0), conv_act(c0, c0, 1))
        stages = []
        for i, (n, c) in enumerate(zip(layers, dims)):
            if i > 0:
                stages.append(PatchEmbed(dims[i - 1], c))
            last = i == len(layers) - 1
            if last and attention_last:
                stages.append(nn.Conv2d(c, c, 7, 1, 3, groups=c))  # RepCPE, reparameterised
                stages.extend(AttentionBlock(c, ratio) for _ in range(n))
            else:
                stages.extend(RepMixerBlock(c, ratio) for _ in range(n))
        self.stages = nn.Sequential(*stages)
        c = dims[-1]
        self.conv_exp = nn.Conv2d(c, 2 * c, 3, 1, 1, groups=c)
        self.se = SE(2 * c)
        self.head = nn.Linear(2 * c, 1000)

    def forward(self, x):
        x = self.stages(self.stem(x))
        x = F.gelu(self.se(self.conv_exp(x)))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


# --------------------------------------------------------------------------------------
# Whisper tiny encoder (openai/whisper AudioEncoder)


class WhisperEncoder(nn.Module):
    def __init__(self, mels=80, ctx=1500, d=384, heads=6, layers=4):
        super().__init__()
        self.h = heads
        self.conv1 = nn.Conv1d(mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("pos", torch.randn(ctx, d) * 0.02)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(
                nn.ModuleDict(
                    dict(
                        ln1=nn.LayerNorm(d),
                        q=nn.Linear(d, d),
                        k=nn.Linear(d, d, bias=False),
                        v=nn.Linear(d, d),
                        o=nn.Linear(d, d),
                        ln2=nn.LayerNorm(d),
                        f1=nn.Linear(d, 4 * d),
                        f2=nn.Linear(4 * d, d),
                    )
                )
            )
        self.ln = nn.LayerNorm(d)

    def forward(self, mel):
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).permute(0, 2, 1) + self.pos
        b, n, d = x.shape
        dh = d // self.h
        for B in self.blocks:
            t = B["ln1"](x)

            def heads(z):
                return z.view(b, n, self.h, dh).permute(0, 2, 1, 3)

            q = heads(B["q"](t)) * dh**-0.25
            k = heads(B["k"](t)) * dh**-0.25
            v = heads(B["v"](t))
            a = ((q @ k.transpose(-1, -2)).softmax(-1) @ v).permute(0, 2, 1, 3).reshape(b, n, d)
            x = x + B["o"](a)
            x = x + B["f2"](F.gelu(B["f1"](B["ln2"](x))))
        return self.ln(x)


# --------------------------------------------------------------------------------------
# ResNet-18 (torchvision), MiniLM-L6 (BERT), ViT-B/16 (torchvision)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class MiniLM(nn.Module):
    def __init__(self, vocab=30522, d=384, heads=12, ffn=1536, layers=6, seq=14):
        super().__init__()
        self.d, self.h = d, heads
        self.word = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(512, d)
        self.typ = nn.Embedding(2, d)
        self.register_buffer("pos_ids", torch.arange(seq).unsqueeze(0))
        self.emb_ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(nn.ModuleDict(dict(
                q=nn.Linear(d, d), k=nn.Linear(d, d), v=nn.Linear(d, d), o=nn.Linear(d, d),
                ln1=nn.LayerNorm(d, eps=1e-12), f1=nn.Linear(d, ffn), f2=nn.Linear(ffn, d),
                ln2=nn.LayerNorm(d, eps=1e-12))))

    def forward(self, ids):
        x = self.emb_ln(self.word(ids) + self.pos(self.pos_ids) + self.typ.weight[0])
        b, s, _ = x.shape
        dh = self.d // self.h
        for L in self.layers:
            def heads(t):
                return t.view(b, s, self.h, dh).transpose(1, 2)

            q, k, v = heads(L["q"](x)), heads(L["k"](x)), heads(L["v"](x))
            a = ((q @ k.transpose(-1, -2)) * dh**-0.5).softmax(-1) @ v
            x = L["ln1"](x + L["o"](a.transpose(1, 2).reshape(b, s, self.d)))
            x = L["ln2"](x + L["f2"](F.gelu(L["f1"](x))))
        e = x.mean(1)
        return e / e.norm(dim=-1, keepdim=True)


class ViTB16(nn.Module):
    def __init__(self, d=768, heads=12, mlp=3072, layers=12, img=224, patch=16):
        super().__init__()
        self.d, self.h = d, heads
        n = (img // patch) ** 2 + 1
        self.patch = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n, d) * 0.02)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict(dict(
                ln1=nn.LayerNorm(d, eps=1e-6), qkv=nn.Linear(d, 3 * d), o=nn.Linear(d, d),
                ln2=nn.LayerNorm(d, eps=1e-6), f1=nn.Linear(d, mlp), f2=nn.Linear(mlp, d))))
        self.ln = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, 1000)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        b, n, d = x.shape
        dh = d // self.h
        for B in self.blocks:
            qkv = B["qkv"](B["ln1"](x)).reshape(b, n, 3, self.h, dh).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = ((q * dh**-0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
            x = x + B["o"](a.transpose(1, 2).reshape(b, n, d))
            x = x + B["f2"](F.gelu(B["f1"](B["ln2"](x))))
        return self.head(self.ln(x)[:, 0])


# --------------------------------------------------------------------------------------
# Depth Anything small (DINOv2-S/14 backbone + DPT head, as transformers'
# DepthAnythingForDepthEstimation with the depth-anything-small config), at the 518x392 input of
# Apple's Core ML conversion (apple/coreml-depth-anything-small).


class PreActResidual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, 1, 1)
        self.c2 = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return x + self.c2(F.relu(self.c1(F.relu(x))))


class FusionLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.res1 = PreActResidual(c)
        self.res2 = PreActResidual(c)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x, skip=None, size=None):
        if skip is not None:
            x = x + self.res1(skip)
        x = self.res2(x)
        x = F.interpolate(x, size=size, scale_factor=None if size else 2, mode="bilinear", align_corners=True)
        return self.proj(x)


class DepthAnythingSmall(nn.Module):
    def __init__(self, d=384, heads=6, layers=12, h=392, w=518, patch=14, neck=(48, 96, 192, 384), fusion=64, head=32):
        super().__init__()
        self.d, self.h, self.gh, self.gw, self.patch = d, heads, h // patch, w // patch, patch
        n = self.gh * self.gw + 1
        self.embed = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n, d) * 0.02)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict(dict(
                ln1=nn.LayerNorm(d, eps=1e-6), q=nn.Linear(d, d), k=nn.Linear(d, d), v=nn.Linear(d, d),
                o=nn.Linear(d, d), ln2=nn.LayerNorm(d, eps=1e-6), f1=nn.Linear(d, 4 * d), f2=nn.Linear(4 * d, d))))
            self.blocks[-1].ls1 = nn.Parameter(torch.full((d,), 0.1))
            self.blocks[-1].ls2 = nn.Parameter(torch.full((d,), 0.1))
        self.ln = nn.LayerNorm(d, eps=1e-6)
        self.out_layers = (3, 6, 9, 12)
        self.proj = nn.ModuleList(nn.Conv2d(d, c, 1) for c in neck)
        self.resize = nn.ModuleList([
            nn.ConvTranspose2d(neck[0], neck[0], 4, 4),
            nn.ConvTranspose2d(neck[1], neck[1], 2, 2),
            nn.Identity(),
            nn.Conv2d(neck[3], neck[3], 3, 2, 1),
        ])
        self.convs = nn.ModuleList(nn.Conv2d(c, fusion, 3, 1, 1, bias=False) for c in neck)
        self.fusion = nn.ModuleList(FusionLayer(fusion) for _ in neck)
        self.head1 = nn.Conv2d(fusion, head, 3, 1, 1)
        self.head2 = nn.Conv2d(head, head, 3, 1, 1)
        self.head3 = nn.Conv2d(head, 1, 1)

    def forward(self, x):
        size = x.shape[-2:]
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        b, n, d = t.shape
        dh = d // self.h
        feats = []
        for i, B in enumerate(self.blocks, 1):
            y = B["ln1"](t)

            def heads(z):
                return z.view(b, n, self.h, dh).transpose(1, 2)

            q, k, v = heads(B["q"](y)), heads(B["k"](y)), heads(B["v"](y))
            a = ((q * dh**-0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
            t = t + B.ls1 * B["o"](a.transpose(1, 2).reshape(b, n, d))
            t = t + B.ls2 * B["f2"](F.gelu(B["f1"](B["ln2"](t))))
            if i in self.out_layers:
                feats.append(self.ln(t)[:, 1:].transpose(1, 2).reshape(b, d, self.gh, self.gw))
        maps = [conv(rs(pr(f))) for f, pr, rs, conv in zip(feats, self.proj, self.resize, self.convs)]
        y = self.fusion[3](maps[3], size=maps[2].shape[-2:])
        y = self.fusion[2](y, maps[2], size=maps[1].shape[-2:])
        y = self.fusion[1](y, maps[1], size=maps[0].shape[-2:])
        y = self.fusion[0](y, maps[0])
        y = self.head1(y)
        y = F.interpolate(y, size=(self.gh * self.patch, self.gw * self.patch), mode="bilinear", align_corners=True)
        return F.relu(self.head3(F.relu(self.head2(y))))


# --------------------------------------------------------------------------------------

MODELS = {
    "distilbert_ane": (lambda: DistilBertANE(), {"input_ids": ((1, 128), np.int32)}),
    "distilbert_linear": (lambda: DistilBertLinear(), {"input_ids": ((1, 128), np.int32)}),
    "fastvit_t8": (lambda: FastViT([2, 2, 4, 2], [48, 96, 192, 384], 3, False), {"image": ((1, 3, 256, 256), np.float32)}),
    "fastvit_ma36": (lambda: FastViT([6, 6, 18, 6], [76, 152, 304, 608], 4, True), {"image": ((1, 3, 256, 256), np.float32)}),
    "fastvit_t12": (lambda: FastViT([2, 2, 6, 2], [64, 128, 256, 512], 3, False), {"image": ((1, 3, 256, 256), np.float32)}),
    "fastvit_s12": (lambda: FastViT([2, 2, 6, 2], [64, 128, 256, 512], 4, False), {"image": ((1, 3, 256, 256), np.float32)}),
    "fastvit_sa12": (lambda: FastViT([2, 2, 6, 2], [64, 128, 256, 512], 4, True), {"image": ((1, 3, 256, 256), np.float32)}),
    "fastvit_sa24": (lambda: FastViT([4, 4, 12, 4], [64, 128, 256, 512], 4, True), {"image": ((1, 3, 256, 256), np.float32)}),
    "fastvit_sa36": (lambda: FastViT([6, 6, 18, 6], [64, 128, 256, 512], 4, True), {"image": ((1, 3, 256, 256), np.float32)}),
    "whisper_tiny_encoder": (lambda: WhisperEncoder(), {"mel": ((1, 80, 3000), np.float32)}),
    "whisper_base_encoder": (lambda: WhisperEncoder(d=512, heads=8, layers=6), {"mel": ((1, 80, 3000), np.float32)}),
    "whisper_small_encoder": (lambda: WhisperEncoder(d=768, heads=12, layers=12), {"mel": ((1, 80, 3000), np.float32)}),
    "whisper_medium_encoder": (lambda: WhisperEncoder(d=1024, heads=16, layers=24), {"mel": ((1, 80, 3000), np.float32)}),
    "resnet18": (lambda: ResNet18(), {"image": ((1, 3, 224, 224), np.float32)}),
    "minilm_l6": (lambda: MiniLM(), {"input_ids": ((1, 14), np.int32)}),
    "vit_b16": (lambda: ViTB16(), {"image": ((1, 3, 224, 224), np.float32)}),
    "depth_anything_small": (lambda: DepthAnythingSmall(), {"image": ((1, 3, 392, 518), np.float32)}),
}

AF = "github.com/sbryngelson/ANEForge @ 067717a bench/results/device_compare_wattcomplete_results_"
FV = "github.com/apple/ml-fastvit @ 8af5928 README.md (model zoo: iPhone 12 Pro, ModelBench app)"
DA = "huggingface.co/apple/coreml-depth-anything-small (small-float16, 518x392; "
# Whole-model latencies (and package energy where measured) never used by the fit:
# (model, device, chip, path, compute units, ms, mJ, source, note)
ANCHORS = [
    ("distilbert_ane", "iPhone 13", "A15", "coreml", "all", 3.47, None, "machinelearning.apple.com/research/neural-engine-transformers (iOS 16, seq 128, batch 1)", "Apple's optimised model"),
    ("distilbert_linear", "iPhone 13", "A15", "coreml", "all", None, None, "same article: the optimised model is 'up to 10x faster' than this baseline", "no absolute number published"),
    ("fastvit_t8", "iPhone 16 Pro", "A18 Pro", "coreml", "all", 0.52, None, "developer.apple.com/machine-learning/models (FastViT-T8 F16, iOS 18.3)", ""),
    ("fastvit_t8", "iPhone 12 Pro Max", "A14", "coreml", "all", 0.79, None, "huggingface.co/apple/coreml-FastViT-T8 (iOS 17.5)", ""),
    ("fastvit_t8", "MacBook Pro M3 Max", "M3 Max", "coreml", "all", 0.62, None, "huggingface.co/apple/coreml-FastViT-T8 (macOS 14.4)", ""),
    ("fastvit_ma36", "iPhone 12 Pro Max", "A14", "coreml", "all", 4.50, None, "huggingface.co/apple/coreml-FastViT-MA36 (iOS 18.0)", ""),
    ("fastvit_ma36", "MacBook Pro M3 Max", "M3 Max", "coreml", "all", 2.99, None, "huggingface.co/apple/coreml-FastViT-MA36 (macOS 15.0)", ""),
    ("fastvit_t8", "iPhone 12 Pro", "A14", "coreml", "all", 0.8, None, FV, "rounded to 0.1 ms"),
    ("fastvit_t12", "iPhone 12 Pro", "A14", "coreml", "all", 1.2, None, FV, "rounded to 0.1 ms"),
    ("fastvit_s12", "iPhone 12 Pro", "A14", "coreml", "all", 1.4, None, FV, "rounded to 0.1 ms"),
    ("fastvit_sa12", "iPhone 12 Pro", "A14", "coreml", "all", 1.6, None, FV, "rounded to 0.1 ms"),
    ("fastvit_sa24", "iPhone 12 Pro", "A14", "coreml", "all", 2.6, None, FV, "rounded to 0.1 ms"),
    ("fastvit_sa36", "iPhone 12 Pro", "A14", "coreml", "all", 3.5, None, FV, "rounded to 0.1 ms"),
    ("fastvit_ma36", "iPhone 12 Pro", "A14", "coreml", "all", 4.6, None, FV, "rounded to 0.1 ms"),
    ("whisper_tiny_encoder", "MacBook Pro M1 Pro", "M1 Pro", "coreml", "all", 30.0, None, "github.com/ggml-org/whisper.cpp/pull/566 (Core ML encoder, 2023)", ""),
    ("whisper_base_encoder", "MacBook Pro M1 Pro", "M1 Pro", "coreml", "all", 64.0, None, "github.com/ggml-org/whisper.cpp/pull/566 (Core ML encoder, 2023)", ""),
    ("whisper_small_encoder", "MacBook Pro M1 Pro", "M1 Pro", "coreml", "all", 208.0, None, "github.com/ggml-org/whisper.cpp/pull/566 (Core ML encoder, 2023)", ""),
    ("whisper_medium_encoder", "MacBook Pro M1 Pro", "M1 Pro", "coreml", "all", 1033.0, None, "github.com/ggml-org/whisper.cpp/pull/566 (Core ML encoder, 2023)", ""),
    ("whisper_tiny_encoder", "Mac Studio M2 Ultra", "M2 Ultra", "coreml", "all", 29.37, None, "github.com/ggml-org/whisper.cpp/pull/1716 (original Core ML model)", ""),
    ("depth_anything_small", "iPhone 12 Pro Max", "A14", "coreml", "all", 31.10, None, DA + "iPhone 12 Pro Max, iOS 18.0)", ""),
    ("depth_anything_small", "iPhone 15 Pro Max", "A17 Pro", "coreml", "all", 33.90, None, DA + "iPhone 15 Pro Max, iOS 17.4)", ""),
    ("depth_anything_small", "MacBook Pro M1 Max", "M1 Max", "coreml", "all", 32.80, None, DA + "MacBook Pro (M1 Max), macOS 15.0)", ""),
    ("depth_anything_small", "MacBook Pro M3 Max", "M3 Max", "coreml", "all", 24.58, None, DA + "MacBook Pro (M3 Max), macOS 15.0)", ""),
    ("resnet18", "ANEForge M2 Pro", "M2 Pro", "direct", "cpu-and-ne", 1.064, 2.636, AF + "M2.json", "fp16, BN folded, e5rt direct path"),
    ("minilm_l6", "ANEForge M2 Pro", "M2 Pro", "direct", "cpu-and-ne", 1.753, 3.000, AF + "M2.json", "latency includes host tokenisation"),
    ("vit_b16", "ANEForge M2 Pro", "M2 Pro", "direct", "cpu-and-ne", 21.339, 67.922, AF + "M2.json", "12 layers fused"),
    ("resnet18", "ANEForge M5 Pro", "M5 Pro", "direct", "cpu-and-ne", 0.330, 2.200, AF + "M5.json", "fp16, BN folded, e5rt direct path"),
    ("minilm_l6", "ANEForge M5 Pro", "M5 Pro", "direct", "cpu-and-ne", 0.525, 2.366, AF + "M5.json", "latency includes host tokenisation"),
    ("vit_b16", "ANEForge M5 Pro", "M5 Pro", "direct", "cpu-and-ne", 18.336, 74.666, AF + "M5.json", "12 layers fused"),
]

# Published model cost, for checking that the rebuilt architecture is the right size (none found
# for the larger Whisper encoders).
PUBLISHED_GMAC = {"fastvit_t8": 0.7, "fastvit_ma36": 7.8, "distilbert_ane": 5.6, "distilbert_linear": 5.6, "whisper_tiny_encoder": 18.5, "resnet18": 1.82, "vit_b16": 17.6, "minilm_l6": 0.15}


def build(name, force):
    path = OUT / f"{name}.mlpackage"
    if path.exists() and not force:
        return path
    make, inputs = MODELS[name]
    torch.manual_seed(0)
    model = make().eval()
    example = tuple(
        torch.randint(0, 1000, shape, dtype=torch.int32) if dt == np.int32 else torch.randn(shape)
        for shape, dt in inputs.values()
    )
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    log(f"converting {name}")
    ml = ct.convert(
        traced,
        inputs=[ct.TensorType(name=n, shape=s, dtype=dt) for n, (s, dt) in inputs.items()],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT16,
        minimum_deployment_target=ct.target.iOS16,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    ml.save(str(path))
    return path


def analyze(anekit, path, chip, units, exec_path):
    out = subprocess.run(
        [anekit, "analyze", str(path), "--chip", chip, "--compute-units", units, "--path", exec_path, "--json", "--no-compare"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def summarise(rows):
    errors = [abs(r["error_pct"]) for r in rows if r["error_pct"] is not None]
    energy = [abs(r["energy_error_pct"]) for r in rows if r.get("energy_error_pct") is not None]
    return {
        "points": len(errors),
        "chips": len({r["chip"] for r in rows if r["error_pct"] is not None}),
        "median_abs_error_pct": round(float(np.median(errors)), 1) if errors else None,
        "max_abs_error_pct": round(max(errors), 1) if errors else None,
        "within_2x": sum(1 for r in rows if r["published_ms"] and 0.5 <= r["estimate_ms"] / r["published_ms"] <= 2.0),
        "worst_ratio": round(max((max(r["estimate_ms"] / r["published_ms"], r["published_ms"] / r["estimate_ms"]) for r in rows if r["published_ms"]), default=0.0), 2),
        "energy_points": len(energy),
        "energy_median_abs_error_pct": round(float(np.median(energy)), 1) if energy else None,
        "energy_max_abs_error_pct": round(max(energy), 1) if energy else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--anekit", default=str(ROOT / "target" / "debug" / "anekit"))
    ap.add_argument("--force", action="store_true", help="rebuild the packages")
    args = ap.parse_args()
    rows = []
    for model, device, chip, exec_path, units, ms, mj, source, note in ANCHORS:
        path = build(model, args.force)
        r = analyze(args.anekit, path, chip, units, exec_path)
        e = r["estimate"]
        est = e["latency_ms"]
        est_mj = e["energy"]["total_mj"]
        gflop = r["model"]["flops"] / 1e9
        row = {
            "model": model,
            "device": device,
            "chip": chip,
            "path": exec_path,
            "compute_units": units,
            "published_ms": ms,
            "estimate_ms": round(est, 3),
            "error_pct": None if ms is None else round(100.0 * (est - ms) / ms, 1),
            "measured_mj": mj,
            "estimate_mj": round(est_mj, 3),
            "energy_error_pct": None if mj is None else round(100.0 * (est_mj - mj) / mj, 1),
            "ane_fraction_ops": round(r["coverage"]["ane_fraction_ops"], 3),
            "gflop": round(gflop, 2),
            "published_gflop": 2 * PUBLISHED_GMAC[model] if model in PUBLISHED_GMAC else None,
            "ane_ms": round(e["ane_ms"], 3),
            "dispatch_ms": round(e["dispatch_ms"], 3),
            "overhead_ms": round(e["overhead_ms"], 3),
            "io_ms": round(e["io_ms"], 3),
            "switch_ms": round(e["switch_ms"], 3),
            "ane_memory_bound_fraction": round(e["ane_memory_bound_fraction"], 2),
            "segments": len(r["segments"]),
            "source": source,
            "note": note,
        }
        rows.append(row)
        log(f"{model} on {chip} ({exec_path}): estimate {est:.3f} ms, published {ms}; {est_mj:.2f} mJ vs {mj}")
    summary = {
        "all": summarise(rows),
        "coreml": summarise([r for r in rows if r["path"] == "coreml"]),
        "direct": summarise([r for r in rows if r["path"] == "direct"]),
    }
    JSON_OUT.write_text(json.dumps({"generator": "scripts/make_estimator_models.py", "coremltools": ct.__version__, "torch": torch.__version__, "summary": summary, "rows": rows}, indent=2) + "\n")
    table = [
        "| model | device (chip) | path | measured ms | estimate ms | error | measured mJ | estimate mJ | error | NE ops | GFLOP (published) | segments |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        pub = "—" if r["published_ms"] is None else f"{r['published_ms']:.2f}"
        err = "—" if r["error_pct"] is None else f"{r['error_pct']:+.0f}%"
        mj = "—" if r["measured_mj"] is None else f"{r['measured_mj']:.2f}"
        emj = "—" if r["energy_error_pct"] is None else f"{r['energy_error_pct']:+.0f}%"
        table.append(
            f"| {r['model']} | {r['device']} ({r['chip']}) | {r['path']} | {pub} | {r['estimate_ms']:.2f} | {err} | "
            f"{mj} | {r['estimate_mj']:.2f} | {emj} | {100 * r['ane_fraction_ops']:.0f}% | "
            f"{r['gflop']:.1f} ({'—' if r['published_gflop'] is None else format(r['published_gflop'], '.1f')}) | {r['segments']} |"
        )
    table.append("")
    for name, label in (("all", "All"), ("coreml", "Core ML path"), ("direct", "Direct path")):
        sm = summary[name]
        line = (
            f"{label}: {sm['points']} latencies on {sm['chips']} chips, median absolute error "
            f"{sm['median_abs_error_pct']}%, largest {sm['max_abs_error_pct']}%, {sm['within_2x']} within 2x "
            f"(worst {sm['worst_ratio']}x off)"
        )
        if sm["energy_points"]:
            line += (
                f"; energy: {sm['energy_points']} points, median {sm['energy_median_abs_error_pct']}%, "
                f"largest {sm['energy_max_abs_error_pct']}%"
            )
        table.append(line + ".  ")
    text = "\n".join(table)
    print(text)
    if DOC.exists():
        doc = DOC.read_text()
        a, b = "<!-- estimates:begin -->", "<!-- estimates:end -->"
        if a in doc and b in doc:
            head, rest = doc.split(a, 1)
            _, tail = rest.split(b, 1)
            DOC.write_text(f"{head}{a}\n{text}\n{b}{tail}")


if __name__ == "__main__":
    main()
