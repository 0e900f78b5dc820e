#!/usr/bin/env python3
"""Whole-pipeline timing: `gaussad eval` vs the independent Python reference, side by side.

    cargo build --release -p gaussad
    python3 benches/pipeline/compare_reference.py [--runs 5] [--dataset datasets/dev]
        [--gaussad target/release/gaussad] [--markdown OUT.md]

Both programs run the same method on the same dataset (EfficientNet-Lite0 @ 224, levels 3-7,
opca:0.05, per-position Gaussians, pooled image score: the defaults of both). The runs are
interleaved (gaussad, gaussad --panels 0, reference, again ...) so
that drifting machine load hits all of them alike. The reference is timed with its BLAS
(NumPy/SciPy, OpenBLAS) limited to the thread counts of --ref-blas-threads and the FASTEST median
is used for the ratio (onnxruntime always has 2 intra-op threads).
gaussad runs with its defaults, which write more than the reference (plots, heatmap panels,
per-image CSVs); `--panels 0` is timed as well.

Wall clock includes process start, model loading, decoding, fitting, scoring and writing
results. After timing, the script checks that both produced the same metrics (to 1e-4), so a
fast wrong answer cannot pass.

Prints a Markdown table of medians (with min/max) and the ratio reference / gaussad.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def timed(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return dt


def load_avg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dataset", default=os.path.join(ROOT, "datasets", "dev"))
    ap.add_argument("--gaussad", default=os.path.join(ROOT, "target", "release", "gaussad"))
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument(
        "--ref-blas-threads",
        default="1",
        help="comma-separated BLAS thread counts to time the reference with (default 1; '1,2' "
        "times both - 2 was 5.8x slower on a loaded 2-core machine, BLAS and onnxruntime "
        "threads oversubscribing the cores)",
    )
    a = ap.parse_args()
    if not os.path.isfile(a.gaussad):
        sys.exit(f"{a.gaussad}: not found - run `cargo build --release -p gaussad` first")
    ref = os.path.join(ROOT, "tools", "reference", "gaussad_reference.py")
    tmp = tempfile.mkdtemp(prefix="gaussad-vs-ref-")
    env = dict(os.environ)
    variants = {
        "gaussad eval": ([a.gaussad, "eval", "--quiet", "--dataset", a.dataset, "--out", f"{tmp}/g"], env),
        "gaussad eval --panels 0": (
            [a.gaussad, "eval", "--quiet", "--panels", "0", "--dataset", a.dataset, "--out", f"{tmp}/g0"],
            env,
        ),
    }
    for threads in [int(t) for t in a.ref_blas_threads.split(",")]:
        e = dict(env)
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            e[v] = str(threads)
        variants[f"reference, BLAS {threads} thread(s)"] = (
            [sys.executable, ref, "--dataset", a.dataset, "--out", f"{tmp}/ref{threads}.json"],
            e,
        )
    times = {k: [] for k in variants}
    loads = []
    # One untimed warm-up of each (page cache, lazy imports).
    for cmd, e in variants.values():
        timed(cmd, e)
    for _ in range(a.runs):
        for k, (cmd, e) in variants.items():
            loads.append(load_avg())
            times[k].append(timed(cmd, e))

    # Same answer?
    g = json.load(open(f"{tmp}/g/results.json"))
    r = json.load(open(f"{tmp}/ref{a.ref_blas_threads.split(',')[0]}.json"))
    worst = 0.0
    for cat, rc in r["categories"].items():
        gc = g["categories"][cat]
        for key in ("image_auroc", "pixel_auroc", "aupro"):
            worst = max(worst, abs(gc[key] - rc[key]))
    if worst > 1e-4:
        sys.exit(f"metrics differ between gaussad and the reference by {worst:.2e}")

    med = {k: statistics.median(v) for k, v in times.items()}
    best_ref = min(v for k, v in med.items() if k.startswith("reference"))
    lines = [
        f"Dataset {os.path.relpath(a.dataset, ROOT)}, {a.runs} interleaved runs each, load average "
        f"during the runs {min(loads):.2f}-{max(loads):.2f}; metrics agree to {worst:.1e}.",
        "",
        "| program | median s | min s | max s | reference (best) / this |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in times.items():
        lines.append(f"| {k} | {med[k]:.2f} | {min(v):.2f} | {max(v):.2f} | {best_ref / med[k]:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
