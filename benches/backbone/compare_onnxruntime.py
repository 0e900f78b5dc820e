#!/usr/bin/env python3
"""Times onnxruntime (CPU, 2 threads) on the committed EfficientNet-Lite0 ONNX, for
comparison with the criterion bench `cargo bench -p backbone --bench forward`.

    python3 benches/backbone/compare_onnxruntime.py [--threads 2] [--runs 30]

Prints the median (and min/max) forward time per batch for batch 1 and 8 at 224x224,
computing every output of the file (logits + all block outputs), like the Rust bench
computes every level up to the head.
"""
import argparse
import os
import statistics
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ONNX = os.path.join(ROOT, "crates", "backbone", "weights", "efficientnet-lite0", "efficientnet-lite0.onnx")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(ONNX, so, providers=["CPUExecutionProvider"])
    print("onnxruntime", ort.__version__, "threads", a.threads)
    for b in (1, 8):
        x = np.random.default_rng(0).standard_normal((b, 3, 224, 224)).astype(np.float32)
        for _ in range(3):
            sess.run(None, {"image": x})
        ts = []
        for _ in range(a.runs):
            t = time.perf_counter()
            sess.run(None, {"image": x})
            ts.append(time.perf_counter() - t)
        print("efficientnet-lite0@224 batch %d: median %.2f ms (min %.2f, max %.2f) over %d runs"
              % (b, 1e3 * statistics.median(ts), 1e3 * min(ts), 1e3 * max(ts), a.runs))


if __name__ == "__main__":
    main()
