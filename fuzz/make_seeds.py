#!/usr/bin/env python3
"""Write the seed corpora in fuzz/corpus/<target>/ from the coremltools-written fixtures.

Seeds are small: valid samples cut from fixtures/ plus one file per malformed case that the
tests in crates/anekit-format/tests/malformed.rs check. Run from the repository root:

    python3 fuzz/make_seeds.py

Crashers found by the fuzzer are added by hand (named crash-*), never by this script.
"""
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "fixtures")
OUT = os.path.join(ROOT, "fuzz", "corpus")
SEP = b"--anekit-fuzz--"


def read(*p):
    with open(os.path.join(FIX, *p), "rb") as f:
        return f.read()


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def blobs(data):
    """(dtype, payload, padding_bits) of every blob, walking from offset 64."""
    count = struct.unpack_from("<I", data, 0)[0]
    at, out = 64, []
    for _ in range(count):
        _s, dt, size, off, pad = struct.unpack_from("<IIQQQ", data, at)
        out.append((dt, data[off:off + size], pad))
        at = (off + size + 63) & ~63
    return out


def blob_file(items):
    """A version-2 blob file holding `items` (dtype, payload, padding_bits)."""
    out = bytearray(struct.pack("<II", len(items), 2) + bytes(56))
    for dt, payload, pad in items:
        out += bytes((-len(out)) % 64)
        meta = len(out)
        out += struct.pack("<IIQQQ", 0xDEADBEEF, dt, len(payload), meta + 64, pad) + bytes(32)
        out += payload
    return bytes(out)


def patched(data, at, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, at, value)
    return bytes(b)


# --- blob_file ---------------------------------------------------------------------------
small = read("models/two_io_fp32_ios16.mlpackage/Data/com.apple.CoreML/weights/weight.bin")
write("blob_file", "valid-two-io-fp32", small)
# Sub-byte blobs (int4 data and scales/offsets) cut from the int4 and palettized fixtures:
# the smallest blob of each dtype, re-packed into a fresh file.
cut = {}
for src in ["mlp_int4_per_block_ios18", "mlp_palettized4_ios16", "mlp_pruned50_ios18"]:
    for dt, payload, pad in blobs(read("models", src + ".mlpackage", "Data/com.apple.CoreML/weights/weight.bin")):
        if dt not in cut or len(payload) < len(cut[dt][1]):
            cut[dt] = (dt, payload[:512], 0 if dt in (1, 2, 3, 4) else pad)
write("blob_file", "valid-mixed-dtypes", blob_file(sorted(cut.values())))
write("blob_file", "valid-uint3-padding", blob_file([(12, b"\xff\x7f", 1), (13, b"\x3f\x0f\x03", 6)]))
write("blob_file", "bad-sentinel", patched(small, 64, "<I", 0xCAFEBABE))
write("blob_file", "bad-version", patched(small, 4, "<I", 1))
write("blob_file", "huge-count", patched(small, 0, "<I", 0xFFFFFFFF))
write("blob_file", "size-past-end", patched(small, 64 + 8, "<Q", 2**64 - 2))
write("blob_file", "offset-past-end", patched(small, 64 + 16, "<Q", 2**40))
write("blob_file", "bad-dtype", patched(small, 64 + 4, "<I", 99))
write("blob_file", "bad-padding", blob_file([(11, b"\xff", 5)]))
write("blob_file", "truncated-header", small[:40])
write("blob_file", "truncated-payload", small[:200])

# --- manifest ----------------------------------------------------------------------------
man = read("models/two_io_fp32_ios16.mlpackage/Manifest.json")
m = json.loads(man)
root = m["rootModelIdentifier"]


def manifest_variant(f):
    v = json.loads(man)
    f(v)
    return json.dumps(v, indent=4).encode()


write("manifest", "valid-two-io", man)
write("manifest", "parent-dir", manifest_variant(lambda v: v["itemInfoEntries"][root].update(path="../../x")))
write("manifest", "absolute", manifest_variant(lambda v: v["itemInfoEntries"][root].update(path="/etc/passwd")))
write("manifest", "missing-path", manifest_variant(lambda v: v["itemInfoEntries"][root].pop("path")))
write("manifest", "missing-root", manifest_variant(lambda v: v.pop("rootModelIdentifier")))
write("manifest", "unknown-root", manifest_variant(lambda v: v.update(rootModelIdentifier="nope")))
write("manifest", "version-too-new", manifest_variant(lambda v: v.update(fileFormatVersion="1.0.1")))
write("manifest", "version-two-parts", manifest_variant(lambda v: v.update(fileFormatVersion="1.0")))
write("manifest", "wrong-types", manifest_variant(lambda v: v.update(itemInfoEntries=[1, 2])))
write("manifest", "not-json", man[:100])
write("manifest", "deep-nesting", b"[" * 4096 + b"]" * 4096)

# --- mlmodel -----------------------------------------------------------------------------
model = read("models/two_io_fp32_ios16.mlpackage/Data/com.apple.CoreML/model.mlmodel")
write("mlmodel", "valid-two-io", model)
write("mlmodel", "valid-flexible-enum", read("models/flexible_enum_fp16_ios17.mlpackage/Data/com.apple.CoreML/model.mlmodel"))
write("mlmodel", "valid-neuralnetwork", read("models/neuralnetwork_fp32.mlmodel"))
write("mlmodel", "valid-int4", read("models/mlp_int4_per_block_ios18.mlpackage/Data/com.apple.CoreML/model.mlmodel"))
write("mlmodel", "truncated", model[: len(model) // 2])
write("mlmodel", "huge-length", b"\x92\x1f\xff\xff\xff\xff\x0f")  # field 502, length 2^32-1
write("mlmodel", "valid-repeated-oneof", b"\x92\x1f\x02\x12\x00" * 50)

# --- mlpackage ---------------------------------------------------------------------------
weights = small
write("mlpackage", "valid-two-io", SEP.join([man, model, weights]))
write("mlpackage", "valid-flexible-enum", SEP.join([
    read("models/flexible_enum_fp16_ios17.mlpackage/Manifest.json"),
    read("models/flexible_enum_fp16_ios17.mlpackage/Data/com.apple.CoreML/model.mlmodel"),
    read("models/flexible_enum_fp16_ios17.mlpackage/Data/com.apple.CoreML/weights/weight.bin"),
]))
write("mlpackage", "truncated-model", SEP.join([man, model[:1000], weights]))
write("mlpackage", "bad-sentinel", SEP.join([man, model, patched(weights, 64, "<I", 0)]))
write("mlpackage", "bad-version", SEP.join([man, model, patched(weights, 4, "<I", 3)]))
write("mlpackage", "huge-count", SEP.join([man, model, patched(weights, 0, "<I", 0xFFFFFFFF)]))
write("mlpackage", "size-past-end", SEP.join([man, model, patched(weights, 64 + 8, "<Q", 2**63)]))
write("mlpackage", "truncated-weights", SEP.join([man, model, weights[:100]]))
write("mlpackage", "parent-dir", SEP.join([manifest_variant(lambda v: v["itemInfoEntries"][root].update(path="com.apple.CoreML/../../../model.mlmodel")), model, weights]))
write("mlpackage", "absolute", SEP.join([manifest_variant(lambda v: v["itemInfoEntries"][root].update(path="/etc/hostname")), model, weights]))
write("mlpackage", "version-too-new", SEP.join([manifest_variant(lambda v: v.update(fileFormatVersion="2.0.0")), model, weights]))
write("mlpackage", "no-weights", SEP.join([man, model]))
write("mlpackage", "manifest-only", man)

# --- mlmodelc ----------------------------------------------------------------------------
md = read("external/add_model.mlmodelc/metadata.json")
cd = read("external/add_model.mlmodelc/coremldata.bin")
write("mlmodelc", "valid-add-model", SEP.join([md, cd]))
write("mlmodelc", "truncated-coremldata", SEP.join([md, cd[:200]]))
write("mlmodelc", "bad-trailer", SEP.join([md, cd[:-16] + b"\x00" * 16]))
write("mlmodelc", "valid-lenient-metadata", SEP.join([b'[{"specificationVersion": "7", "availability": [], "inputSchema": {}}]', cd]))
write("mlmodelc", "metadata-empty-array", SEP.join([b"[]", cd]))
write("mlmodelc", "huge-length", SEP.join([md, cd[:0x4B] + struct.pack("<Q", 2**64 - 1) + cd[0x53:]]))
