#!/usr/bin/env python3
"""Time an ONNX model in ONNX Runtime (CPU execution provider), for the anekit comparison.

    .venv/bin/python scripts/ort_bench.py MODEL.onnx --input NAME=FILE.npy ... \
        [--threads 2] [--warmup 5] [--runs 50] [--profile]
        -> one JSON object: median_ms, p90_ms, min_ms, runs, threads, onnxruntime version
           (--profile: instead, ONNX Runtime's own per-node profile of --runs runs, as a
           table of time per op type and the slowest nodes with their shapes)

    .venv/bin/python scripts/ort_bench.py MODEL.onnx --input NAME=FILE.npy ... --serve
        -> one JSON line (ready: versions, session options), then per stdin line:
           "run"        one timed session.run; answers the seconds it took
           "save DIR"   writes each output as DIR/<output name>.npy; answers "ok"
           "rss"        the process's peak resident set (VmHWM), kB
           "quit"       exits

Session: intra_op_num_threads = --threads, inter_op_num_threads = 1, sequential execution,
graph optimizations at onnxruntime's default level, CPUExecutionProvider. Inputs are cast to
the dtypes the ONNX graph declares (int32 token ids become int64). The time is
time.perf_counter() around session.run only (inputs are prepared once). --serve lets
`cargo bench -p anekit-runtime --bench vs_onnxruntime` interleave ORT and anekit runs
(A B A B ...) so machine noise hits both alike.
"""

import argparse
import json
import sys
import time

import numpy as np
import onnxruntime as ort

DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def session(path, threads, profile=False):
    so = ort.SessionOptions()
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = "/tmp/ort_bench_profile"
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess, so


def feed_of(sess, files):
    feed = {}
    for i in sess.get_inputs():
        if i.name not in files:
            sys.exit(f"ort_bench: no --input for the model input {i.name!r}")
        v = np.load(files[i.name], allow_pickle=False)
        feed[i.name] = np.ascontiguousarray(v.astype(DTYPES.get(i.type, v.dtype)))
    return feed


def print_profile(sess, outputs, feed, runs, top=25):
    """ONNX Runtime's per-node times (its built-in profiler), mean per run."""
    import os

    sess.run(outputs, feed)  # warm-up (its events are dropped below)
    for _ in range(runs):
        sess.run(outputs, feed)
    path = sess.end_profiling()
    events = json.load(open(path))
    os.unlink(path)
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    # the first len(graph) node events belong to the warm-up run
    per_run = len(nodes) // (runs + 1)
    nodes = nodes[per_run:]
    by_type, by_node = {}, {}
    for e in nodes:
        t = e["args"].get("op_name", "?")
        by_type.setdefault(t, [0.0, set()])
        by_type[t][0] += e["dur"]
        by_type[t][1].add(e["name"])
        n = by_node.setdefault(e["name"], [0.0, t, e["args"]])
        n[0] += e["dur"]
    total = sum(v[0] for v in by_type.values())
    print(f"{'op type':<28} {'nodes':>6} {'ms':>10} {'share':>7}")
    for t, (us, names) in sorted(by_type.items(), key=lambda kv: -kv[1][0]):
        print(f"{t:<28} {len(names):>6} {us / 1e3 / runs:>10.3f} {100 * us / total:>6.1f}%")
    print(f"{'total':<28} {len(by_node):>6} {total / 1e3 / runs:>10.3f}")
    print("slowest nodes:")

    def shapes(args, key):
        out = []
        for d in args.get(key, []):
            for _, v in d.items():
                out.append("x".join(str(x) for x in v) or "scalar")
        return " ".join(out)

    for name, (us, t, args) in sorted(by_node.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {us / 1e3 / runs:>9.3f} ms  {t:<22} {name[:-len('_kernel_time')][:28]:<28} "
              f"{shapes(args, 'input_type_shape')} -> {shapes(args, 'output_type_shape')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=25, help="--profile: slowest nodes listed")
    a = ap.parse_args()
    files = {}
    for s in a.input:
        name, sep, path = s.partition("=")
        if not sep:
            ap.error(f"--input {s!r}: expected NAME=FILE.npy")
        files[name] = path
    sess, so = session(a.model, a.threads, a.profile)
    feed = feed_of(sess, files)
    outputs = [o.name for o in sess.get_outputs()]
    info = {
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": "%d.%d.%d" % sys.version_info[:3],
        "intra_op_num_threads": so.intra_op_num_threads,
        "inter_op_num_threads": so.inter_op_num_threads,
        "graph_optimization_level": str(so.graph_optimization_level).split(".")[-1],
        "providers": sess.get_providers(),
        "outputs": outputs,
    }
    if a.serve:
        print(json.dumps({"ready": True, **info}), flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "run":
                t0 = time.perf_counter()
                sess.run(outputs, feed)
                dt = time.perf_counter() - t0
                print(repr(dt), flush=True)
            elif cmd.startswith("save "):
                import os

                d = cmd[5:]
                os.makedirs(d, exist_ok=True)
                for name, v in zip(outputs, sess.run(outputs, feed)):
                    np.save(os.path.join(d, f"{name}.npy"), np.asarray(v), allow_pickle=False)
                print("ok", flush=True)
            elif cmd == "rss":
                # peak resident set of this process (Linux), kB
                hwm = "0"
                try:
                    for line in open("/proc/self/status"):
                        if line.startswith("VmHWM:"):
                            hwm = line.split()[1]
                except OSError:
                    pass
                print(hwm, flush=True)
            elif cmd == "quit" or not cmd:
                return
            else:
                print(f"error: unknown command {cmd!r}", flush=True)
        return
    if a.profile:
        return print_profile(sess, outputs, feed, a.runs, a.top)
    for _ in range(a.warmup):
        sess.run(outputs, feed)
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        sess.run(outputs, feed)
        times.append(time.perf_counter() - t0)
    ms = np.sort(np.array(times) * 1e3)
    print(json.dumps({
        "model": a.model,
        "runs": a.runs,
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "min_ms": float(ms[0]),
        **info,
    }))


if __name__ == "__main__":
    main()
