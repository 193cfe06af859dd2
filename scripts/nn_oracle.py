#!/usr/bin/env python3
"""coremltools as the oracle for NeuralNetwork weight compression
(`coremltools.models.neural_network.quantization_utils.quantize_weights`).

    nn_oracle.py quantize IN.mlmodel OUT.mlmodel --nbits N [--mode linear|linear_symmetric|kmeans|linear_lut]
    nn_oracle.py quantize-many JOBS.json     # [{"src", "dst", "nbits", "mode"}, ...] in one process

Used by anekit-compress's interop test (tests/nn_oracle.rs) and by make_fixtures.py.

coremltools 9.0's k-means path builds the lookup table as a (2^nbits, 1) array and passes it
to protobuf's `extend`, which numpy ≥ 2 / protobuf ≥ 5 refuse ("has type ndarray, but
expected one of: float"); `patch_kmeans_lut` makes the table 1-D (the values are unchanged).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_util import import_coremltools, stdout_to_stderr  # noqa: E402


def patch_kmeans_lut():
    from coremltools.models.neural_network import quantization_utils as qu

    orig = qu._get_kmeans_lookup_table_and_weight
    if getattr(orig, "_anekit_patched", False):
        return

    def wrapped(nbits, weight, *a, **kw):
        lut, wq = orig(nbits, weight, *a, **kw)
        if getattr(lut, "ndim", 1) == 2 and lut.shape[1] == 1:
            lut = lut[:, 0]
        return lut, wq

    wrapped._anekit_patched = True
    qu._get_kmeans_lookup_table_and_weight = wrapped


def quantize(src, dst, nbits, mode):
    ct = import_coremltools()
    from coremltools.models.neural_network import quantization_utils as qu

    patch_kmeans_lut()
    model = ct.models.MLModel(src, skip_model_load=True)
    kw = {"nbits": nbits}
    if nbits < 16:
        kw["quantization_mode"] = mode
    q = qu.quantize_weights(model, **kw)
    spec = q.get_spec() if isinstance(q, ct.models.MLModel) else q
    with open(dst, "wb") as f:
        f.write(spec.SerializeToString())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("src")
    q.add_argument("dst")
    q.add_argument("--nbits", type=int, required=True)
    q.add_argument("--mode", default="linear")
    m = sub.add_parser("quantize-many")
    m.add_argument("jobs")
    args = ap.parse_args()
    with stdout_to_stderr() as out:
        if args.cmd == "quantize":
            quantize(args.src, args.dst, args.nbits, args.mode)
        else:
            with open(args.jobs) as f:
                for job in json.load(f):
                    quantize(job["src"], job["dst"], int(job["nbits"]), job["mode"])
        os.write(out, (json.dumps({"ok": True}) + "\n").encode())


if __name__ == "__main__":
    main()
