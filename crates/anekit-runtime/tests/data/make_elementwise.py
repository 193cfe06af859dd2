#!/usr/bin/env python3
"""NumPy oracle for the broadcasting paths of the elementwise binary kernels
(crates/anekit-runtime/tests/kernels_elementwise.rs).

    .venv/bin/python crates/anekit-runtime/tests/data/make_elementwise.py

Writes elementwise/broadcast.json: per case an op (sub, real_div, maximum: not commutative
or order-sensitive where it matters), the two operand shapes, NumPy's output shape, the sum
of the output (float64 of the float32 results) and the output at a few flat indices. The
operands are a deterministic function of the flat index that the test recomputes:

    x[i] = ((i * 7919) % 1000) / 100 - 5        y[i] = ((i * 104729) % 997) / 100 + 0.5

(float32). Shapes cover same-shape, scalar, trailing-block ("row") broadcast in both operand
orders, general broadcasting, and sizes above and below the kernels' parallel threshold
(32768 elements).
"""

import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "elementwise")


def x_of(shape):
    i = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    return (((i * 7919) % 1000) / 100.0 - 5.0).astype(np.float32).reshape(shape)


def y_of(shape):
    i = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    return (((i * 104729) % 997) / 100.0 + 0.5).astype(np.float32).reshape(shape)


OPS = {"sub": np.subtract, "real_div": np.divide, "maximum": np.maximum}

SHAPES = [
    ([2, 64, 300], [2, 64, 300]),  # same shape, parallel
    ([5, 7], [5, 7]),  # same shape, sequential
    ([2, 64, 300], [300]),  # row repeat
    ([300], [2, 64, 300]),  # row repeat, operands swapped
    ([2, 64, 300], [1, 64, 300]),  # leading-ones repeat
    ([3, 5], [1, 1, 5]),  # repeat whose rank is higher: output [1, 3, 5]
    ([4], [1, 4]),  # output takes the higher rank
    ([2, 64, 300], []),  # scalar
    ([1], [3, 4]),  # one-element operand first
    ([2, 1, 3], [2, 4, 3]),  # general broadcast
    ([2, 64, 1], [2, 64, 300]),  # general broadcast, parallel size
]


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for op, fn in OPS.items():
        for sa, sb in SHAPES:
            out = fn(x_of(sa), y_of(sb))
            assert out.dtype == np.float32
            flat = out.reshape(-1)
            n = flat.size
            idx = sorted({0, 1 % n, n // 3, n // 2, n - 1})
            cases.append({
                "op": op,
                "x_shape": sa,
                "y_shape": sb,
                "out_shape": list(out.shape),
                "sum": float(flat.astype(np.float64).sum()),
                "samples": [[int(i), float(flat[i])] for i in idx],
            })
    with open(os.path.join(OUT, "broadcast.json"), "w") as f:
        json.dump({"generator": "make_elementwise.py", "numpy": np.__version__, "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
