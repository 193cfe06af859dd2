#!/usr/bin/env python3
"""Write the seed corpus of the mil_text target (fuzz/corpus/mil_text/).

An input is model.mil text, optionally followed by the separator and a weight file. Valid
seeds (seed-valid-*): Apple's add_model.mlmodelc/model.mil from coremltools (BSD-3-Clause,
see fixtures/external/NOTICE) and small programs in both dialects using every construct of
the text form; malformed seeds: one per class of hostile input that
crates/anekit-mil/tests/text_hostile.rs checks. Run from the repository root:

    python3 fuzz/make_mil_text_seeds.py
"""
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus", "mil_text")
SEP = b"--anekit-fuzz--"


def write(name, data):
    os.makedirs(OUT, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(OUT, "seed-" + name), "wb") as f:
        f.write(data)


def blob_file(items):
    """A version-2 blob file holding `items` (dtype, payload, padding_bits)."""
    out = bytearray(struct.pack("<II", len(items), 2) + bytes(56))
    for dt, payload, pad in items:
        out += bytes((-len(out)) % 64)
        meta = len(out)
        out += struct.pack("<IIQQQ", 0xDEADBEEF, dt, len(payload), meta + 64, pad) + bytes(32)
        out += payload
    return bytes(out)


FP16, UINT4 = 1, 11
WEIGHTS = blob_file([(FP16, struct.pack("<4e", 1.0, -2.0, 0.5, 0.0), 0), (UINT4, b"\x21\x43", 0)])
PATH = '"@model_path/weights/weight.bin"'

MODERN = """program(1.3)
[buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})]
{
    func main<ios18>(tensor<fp16, [1, ?]> x, state<tensor<fp16, [1, 4]>> k, bool p) [info = tuple<string, list<tensor<int32, [2]>, ?>>(("RangeDims", [[1, 1], [1, 64]]))] {
            tensor<fp16, [1, 4]> r = read_state(input = k)[name = string("r")];
            tensor<fp16, [4]> w = const()[name = string("w"), val = tensor<fp16, [4]>(BLOBFILE(path = string(@PATH@), offset = uint64(64)))];
            tensor<fp16, [4]> q = constexpr_lut_to_dense(indices = tensor<uint4, [4]>(BLOBFILE(path = string(@PATH@), offset = uint64(192))), lut = tensor<fp16, [16]>([0x0p+0, 0x1p+0, nan, inf, -inf, -0x0p+0, 0x1.5p-17, 0x1.ffcp+15, 0x1p-24, nan(0x7d01), 0x1p+1, 0x1p+2, 0x1p+3, 0x1p+4, 0x1p+5, 0x1p+6]))[name = string("q")];
            tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b = split(axis = int32(1), num_splits = int32(2), x = r)[name = string("sp")];
            tensor<fp16, [1, 4]> c = concat(axis = int32(1), interleave = bool(false), values = (b, a))[name = string("c")];
            write_state(data = c, input = k)[name = string("ws")];
            tensor<fp16, [1, 4]> d = cond(pred = p)[name = string("d")] {
                } -> (c) {
                } -> (r);
            int32 n, tensor<fp16, [1, 4]> e = while_loop(loop_vars = (int32(0), d))[name = string("l")] (int32 i, tensor<fp16, [1, 4]> v) {
                    bool go = less(x = i, y = int32(3))[name = string("go")];
                } -> (go) (int32 j, tensor<fp16, [1, 4]> u) {
                    int32 j1 = add(x = j, y = int32(1))[name = string("j1")];
                } -> (j1, u);
            tensor<int4, [2, 2]> s = const()[name = string("s"), val = tensor<int4, [2, 2]>([[-8, 7], [0, -1]])];
            dict<string, string> m = const()[name = string("m"), val = dict<string, string>({{"k", "v\\n\\u{e9}"}})];
        } -> (e);
    func other<ios17>(tensor<fp32, [?*]> x) {
            tensor<fp32, *> y = identity(x = x)[name = string("y")];
        } -> (y);
}
""".replace("@PATH@", PATH)

LEGACY = """program(1.0)
[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-version", "3402.4.1"}})]
{
    func main<ios16>(tensor<fp16, [1, 4]> x) {
            tensor<fp16, [4]> w = const()[name = tensor<string, []>("w"), val = tensor<fp16, [4]>(BLOBFILE(path = tensor<string, []>(@PATH@), offset = tensor<uint64, []>(64)))];
            tensor<fp16, [1, 4]> y = mul(x = x, y = w)[name = tensor<string, []>("y")];
        } -> (y);
}
""".replace("@PATH@", PATH)

EXTENSIONS = """program(1.3) @doc("anekit extensions")
{
    func `odd name`<`ios18`>(int8 `in put`) [a = tensor<fp16, [2], [k = string("v")]>()] {
            tensor<fp32, [2, 0]> e = const()[val = @doc("empty") @auto tensor<fp32, [2, 0]>([[], []])];
            tensor<int8, [2]> b = const()[val = @blob tensor<int8, [2]>([1, -1])];
        } -> (e) [battr = bool(true)] <ios17> {
        } -> ();
}
"""

with open(os.path.join(ROOT, "fixtures", "external", "add_model.mlmodelc", "model.mil"), "rb") as f:
    write("valid-add-model", f.read())
write("valid-modern-with-weights", MODERN.encode() + SEP + WEIGHTS)
write("valid-legacy-with-weights", LEGACY.encode() + SEP + WEIGHTS)
write("valid-extensions", EXTENSIONS)

write("truncated", MODERN[: len(MODERN) // 2])
write("blob-without-weights", LEGACY)
write("blob-wrong-dtype", LEGACY.replace("tensor<fp16, [4]>(BLOBFILE", "tensor<fp32, [4]>(BLOBFILE").encode() + SEP + WEIGHTS)
write("blob-bad-offset", LEGACY.replace("(64)", "(4096)").encode() + SEP + WEIGHTS)
write("huge-shape", "program(1.3)\n{\n    func main<ios18>() {\n            tensor<fp32, [1000000000000]> t = const()[val = tensor<fp32, [1000000000000]>([1])];\n        } -> (t);\n}\n")
write("overflowing-shape", "program(1.3)\n{\n    func main<ios18>() {\n            tensor<fp32, [4294967296, 4294967296, 4294967296]> t = const()[val = tensor<fp32, [4294967296, 4294967296, 4294967296]>([1])];\n        } -> (t);\n}\n")
write("deep-types", "program(1.3)\n{\n    func main<ios18>(" + "list<" * 5000 + "fp16" + ", 1>" * 5000 + " x) {\n    } -> ();\n}\n")
write("deep-blocks", "program(1.3)\n{\n    func main<ios18>() {\n" + "tensor<fp16, [1]> c = cond(pred = p) {\n" * 5000)
write("deep-brackets", "program(1.3)\n{\n    func main<ios18>() {\n            c(v = tensor<int32, [1]>(" + "[" * 100000 + "1" + "]" * 100000 + "));\n        } -> ();\n}\n")
write("ragged", "program(1.3)\n{\n    func main<ios18>() {\n            c(v = tensor<int32, [2, 2]>([[1, 2], [3]]));\n        } -> ();\n}\n")
write("bad-escape", 'program(1.3)\n{\n    func main<ios18>() {\n            c(v = string("\\q"));\n        } -> ();\n}\n')
write("out-of-range", "program(1.3)\n{\n    func main<ios18>() {\n            c(v = int8(128), w = fp16(70000));\n        } -> ();\n}\n")
write("bad-nan", "program(1.3)\n{\n    func main<ios18>() {\n            c(v = fp16(nan(0x7c00)));\n        } -> ();\n}\n")
write("not-utf8", b"program(1.3)\n{\n\xff\xfe\n}\n")
write("trailing", "program(1.3)\n{\n}\n}")
