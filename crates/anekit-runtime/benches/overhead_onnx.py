#!/usr/bin/env python3
"""The ONNX twin of benches/overhead.rs's op chains, for ONNX Runtime.

    .venv/bin/python crates/anekit-runtime/benches/overhead_onnx.py OUT_DIR --shape 1,64 --depth 201

writes OUT_DIR/chain.onnx (opset 17): `y = Add(y, y)` DEPTH times from the input `x` of
SHAPE (fp32), and OUT_DIR/x.npy, the input that benches/overhead.rs feeds both engines.
`scripts/ort_bench.py OUT_DIR/chain.onnx --input x=OUT_DIR/x.npy` then times it with the
same session options as the ONNX Runtime comparison.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--shape", required=True, help="comma-separated, e.g. 1,64")
    ap.add_argument("--depth", type=int, required=True)
    a = ap.parse_args()
    shape = [int(d) for d in a.shape.split(",")]
    os.makedirs(a.out, exist_ok=True)
    nodes, prev = [], "x"
    for i in range(a.depth):
        name = f"a{i}"
        nodes.append(helper.make_node("Add", [prev, prev], [name], name=name))
        prev = name
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(a.out, "chain.onnx"))
    x = np.random.default_rng(0).uniform(-0.3, 0.3, shape).astype(np.float32)
    np.save(os.path.join(a.out, "x.npy"), x, allow_pickle=False)


if __name__ == "__main__":
    main()
