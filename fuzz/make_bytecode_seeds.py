#!/usr/bin/env python3
"""Write the seeds of the `mlir_bytecode` fuzz target into fuzz/corpus/mlir_bytecode/.

Valid seeds (`seed-valid-*`) are small modules coreai-core wrote (fixtures/coreai, one with
control flow); the malformed ones (`seed-*`, each must be refused) are cut or patched from
them: truncated sections, bad magic, an unknown version, a bad varint, out-of-range
indices, huge claimed sizes, a duplicate section, bad alignment padding, regions nested
past the depth limit.
Needs only fixtures/ (no third-party package).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus" / "mlir_bytecode"


def varint(v):
    if v >> 7 == 0:
        return bytes([(v << 1) | 1])
    for n in range(2, 9):
        if v >> (7 * n) == 0:
            return (((v << 1) | 1) << (n - 1)).to_bytes(n, "little")
    return b"\x00" + v.to_bytes(8, "little")


def read_varint(b, i):
    f = b[i]
    if f & 1:
        return f >> 1, i + 1
    if f == 0:
        return int.from_bytes(b[i + 1:i + 9], "little"), i + 9
    n = (f & -f).bit_length()
    return int.from_bytes(b[i:i + n], "little") >> n, i + n


def sections(b):
    """(id, header start, data start, data end) of each top-level section."""
    i = 4
    _, i = read_varint(b, i)
    i = b.index(0, i) + 1
    out = []
    while i < len(b):
        start = i
        sid = b[i] & 0x7F
        aligned = b[i] & 0x80
        ln, i = read_varint(b, i + 1)
        if aligned:
            a, i = read_varint(b, i)
            while i % a:
                i += 1
        out.append((sid, start, i, i + ln))
        i += ln
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("seed-*"):
        old.unlink()
    valid = {}
    # control_flow_authored: if_v1 inside a while_v1 body, regions that are not isolated
    # (they use the values around them: inline value numbering, no nested IR section).
    for name in ["two_io", "mlp_palettized4", "mlp_int4", "stateful_kv", "control_flow_authored"]:
        data = (ROOT / "fixtures" / "coreai" / "models" / f"{name}.aimodel" / "main.mlirb").read_bytes()
        valid[name] = data
        (OUT / f"seed-valid-{name}").write_bytes(data)
    b = valid["two_io"]
    secs = {s[0]: s for s in sections(b)}
    bad = {}
    bad["empty"] = b""
    bad["bad-magic"] = b"ML\xefX" + b[4:]
    bad["unknown-version"] = b[:4] + varint(99) + b[5:]
    bad["no-producer-nul"] = b[:5] + b"MLIR"
    bad["truncated-header"] = b[:9]
    for sid, (_, start, ds, de) in secs.items():
        bad[f"truncated-section-{sid}"] = b[: ds + (de - ds) // 2]
        # A section claiming far more bytes than the file has.
        bad[f"huge-section-{sid}"] = b[:start] + bytes([b[start]]) + varint(1 << 40) + b[ds:]
    bad["unknown-section-id"] = b + b"\x0c" + varint(1) + b"\x00"
    sid, start, ds, de = secs[0]
    bad["duplicate-string-section"] = b + b[start:de]
    # A 9-byte varint marker with too few bytes after it, at the end of the string section.
    bad["bad-varint"] = b[:de - 1] + b"\x00"
    # The dialect section with a dialect name index past the string table.
    sid, start, ds, de = secs[1]
    body = varint(1) + varint(5000 << 1)
    bad["dialect-name-out-of-range"] = b[:start] + b"\x01" + varint(len(body)) + body + b[de:]
    # The attribute/type offset section claiming a million attributes.
    sid, start, ds, de = secs[3]
    body = varint(1 << 20) + varint(1 << 20)
    bad["huge-attribute-count"] = b[:start] + b"\x03" + varint(len(body)) + body + b[de:]
    # The IR section: one op whose name index is out of range.
    sid, start, ds, de = secs[4]
    body = varint(1 << 1) + varint(999) + b"\x00" + varint(0)
    bad["op-name-out-of-range"] = b[:start] + b"\x04" + varint(len(body)) + body + b[de:]
    # The IR section claiming 2^40 top-level ops.
    body = varint((1 << 40) << 1)
    bad["huge-op-count"] = b[:start] + b"\x04" + varint(len(body)) + body + b[de:]
    # An aligned section with a padding byte that is not 0xCB.
    sid, start, ds, de = secs[2]
    bad["bad-padding"] = b[:start] + bytes([0x82]) + varint(de - ds) + varint(64) + b"\x00" * 64 + b[ds:de] + b[de:]
    # Regions nested 100 levels deep (the reader stops at 64): op 0 with one isolated
    # region (in its own IR section) holding the next op.
    inner = b""
    for _ in range(100):
        block = varint((1 if inner else 0) << 1) + inner
        region = varint(1) + varint(0) + block
        inner = varint(0) + b"\x10" + varint(0) + varint((1 << 1) | 1) + b"\x04" + varint(len(region)) + region
    ir = varint(1 << 1) + inner
    sid, start, ds, de = secs[4]
    bad["deep-nesting"] = b[:start] + b"\x04" + varint(len(ir)) + ir + b[de:]
    for k, v in bad.items():
        (OUT / f"seed-{k}").write_bytes(v)
    print(f"{len(valid)} valid and {len(bad)} malformed seeds in {OUT}")


if __name__ == "__main__":
    main()
