#!/usr/bin/env python3
"""gaussad backbone forward vs onnxruntime on the SAME ONNX file, in one go.

    cargo build --release -p gaussad
    python3 benches/backbone/ratio_table.py [--threads 2] [--iters 10] [--rounds 3] [--gaussad target/release/gaussad]

Cases (batch 8, whole network: every level up to the head for gaussad, the full graph
for onnxruntime):

* EfficientNet-Lite0 @ 224 with the committed ONNX
  (crates/backbone/weights/efficientnet-lite0/efficientnet-lite0.onnx);
* EfficientNet-B4 @ 380: real B4 weights are not available offline, so the B4 graph is
  built here with synthetic weights by the independent ONNX builder of the parity
  fixtures (crates/backbone/tests/fixtures/generate.py, timm layout, batch norm folded)
  and written to a temporary file that gaussad loads with `--backbone FILE.onnx`.

Both sides run with the same number of threads (onnxruntime intra-op threads; gaussad's
rayon pool via RAYON_NUM_THREADS). Prints the median time per batch of each and the ratio
gaussad / onnxruntime (the issue's goal: <= 1.5, stretch <= 1.0), plus the load average.
"""
import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LITE0 = os.path.join(ROOT, "crates", "backbone", "weights", "efficientnet-lite0", "efficientnet-lite0.onnx")
GENERATE = os.path.join(ROOT, "crates", "backbone", "tests", "fixtures", "generate.py")


def load_generator():
    spec = importlib.util.spec_from_file_location("backbone_fixture_generate", GENERATE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def b4_onnx(path):
    """timm efficientnet_b4 with synthetic weights (seed 1), dynamic batch, outputs = levels."""
    gen = load_generator()
    g = gen.G(1)
    outs = gen.efficientnet(g, "x", 1.4, 1.8, [])
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "size", "size"])
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
    graph = helper.make_graph(g.nodes, "efficientnet_b4_synthetic", [inp], outputs, g.inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)]), path)


def time_ort(path, batch, size, threads, iters):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    sess.run(None, {name: x})
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, {name: x})
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts)


def time_gaussad(exe, backbone, levels, batch, size, threads, iters):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [exe, "bench-backbone", "--backbone", backbone, "--resize", str(size),
           "--batch-size", str(batch), "--iters", str(iters), "--levels", ",".join(map(str, levels))]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    m = re.search(r"median ([0-9.]+) ms per batch", out)
    if not m:
        sys.exit("unexpected bench-backbone output: " + out)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--gaussad", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "gaussad"))
    ap.add_argument("--only", choices=["lite0", "b4"], default=None)
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate onnxruntime and gaussad this many times per case (the VM's "
                         "speed drifts: the table gives medians over rounds and the range of "
                         "the per-round ratios)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        b4 = os.path.join(tmp, "efficientnet-b4-synthetic.onnx")
        cases = []
        if a.only in (None, "lite0"):
            # levels 0..8: stem, the seven stages, the head (the whole network)
            cases.append(("efficientnet-lite0@224 (committed ONNX)", LITE0, list(range(9)), 224))
        if a.only in (None, "b4"):
            b4_onnx(b4)
            cases.append(("efficientnet-b4@380 (synthetic ONNX)", b4, list(range(9)), 380))
        print("onnxruntime %s, %d threads, batch %d, %d timed iterations, load average before: %s"
              % (ort.__version__, a.threads, a.batch, a.iters, " ".join("%.2f" % v for v in os.getloadavg())))
        print("| case | gaussad ms/batch | onnxruntime ms/batch | ratio of medians | per-round ratios |")
        print("|---|---:|---:|---:|---|")
        for label, path, levels, size in cases:
            g, o = [], []
            for _ in range(max(1, a.rounds)):
                o.append(time_ort(path, a.batch, size, a.threads, a.iters))
                g.append(time_gaussad(a.gaussad, path, levels, a.batch, size, a.threads, a.iters))
            ms_g, ms_ort = statistics.median(g), statistics.median(o)
            rounds = ", ".join("%.2f" % (x / y) for x, y in zip(g, o))
            print("| %s | %.1f | %.1f | %.2f | %s |" % (label, ms_g, ms_ort, ms_g / ms_ort, rounds), flush=True)
        print("load average after: %s" % " ".join("%.2f" % v for v in os.getloadavg()))


if __name__ == "__main__":
    main()
