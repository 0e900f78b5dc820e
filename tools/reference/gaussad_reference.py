#!/usr/bin/env python3
"""Independent Python reference implementation of the gaussad method (docs/method.md).

Written from the method specification alone (not from the Rust crates), to check the Rust
tool end to end: same backbone (EfficientNet-Lite0 ONNX), same preprocessing, same PCA/OPCA
selection, Ledoit-Wolf Gaussians (scikit-learn), Mahalanobis scores, pixel maps and the MVTec
AD metrics (image AUROC, pixel AUROC, AUPRO at FPR <= 0.3, image F1-max).

Usage (from the repository root):

    python3 tools/reference/gaussad_reference.py --dataset datasets/dev --out FILE.json \
        [--category C ...] [--reduction opca:0.05|pca:0.95|none] \
        [--spatial per-position|shared] [--levels 3,4,5,6,7] \
        [--image-score pooled|map-max] [--resize 224] [--dump-scores SCORES.json]

Requires: numpy, scipy, scikit-learn, onnxruntime, pillow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from bisect import bisect

# Keep NumPy/SciPy's BLAS single-threaded (the machine is shared; onnxruntime has its own 2
# threads). Must be set before NumPy is imported; an explicit environment setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import onnxruntime as ort
import scipy
import scipy.ndimage
import sklearn
from PIL import Image
from sklearn.covariance import LedoitWolf
from sklearn.metrics import precision_recall_curve, roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ONNX = os.path.normpath(
    os.path.join(HERE, "..", "..", "crates", "backbone", "weights", "efficientnet-lite0",
                 "efficientnet-lite0.onnx"))

# Method level -> ONNX output name, and the (channels, size) the weights README documents.
LEVEL_OUTPUTS = {
    0: "stem", 1: "block0", 2: "block2", 3: "block4", 4: "block7",
    5: "block10", 6: "block14", 7: "block15", 8: "head",
}
LEVEL_SHAPES = {  # (channels, spatial size) at 224x224 input, from the weights README
    0: (32, 112), 1: (16, 112), 2: (24, 56), 3: (40, 28), 4: (80, 14),
    5: (112, 14), 6: (192, 7), 7: (320, 7), 8: (1280, 7),
}
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
BATCH = 8
IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def list_images(folder):
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMG_EXT))


def load_image(path, size):
    with Image.open(path) as im:
        im = im.convert("RGB")  # greyscale replicated to 3 channels
        im = im.resize((size, size), Image.BILINEAR)  # PIL antialiases when downscaling
        arr = np.asarray(im, dtype=np.float32) / 255.0
    arr = (arr - MEAN) / STD
    return arr.transpose(2, 0, 1)  # CHW


def load_mask(path, size):
    with Image.open(path) as im:
        im = im.convert("L").resize((size, size), Image.NEAREST)
        return np.asarray(im) > 127


def category_split(root, cat, size):
    """Return train paths, and test (path, label, mask_path or None) tuples."""
    train = list_images(os.path.join(root, cat, "train", "good"))
    if not train:
        raise SystemExit(f"no training images in {os.path.join(root, cat, 'train', 'good')}")
    test = []
    test_root = os.path.join(root, cat, "test")
    for defect in sorted(os.listdir(test_root)):
        for p in list_images(os.path.join(test_root, defect)):
            if defect == "good":
                test.append((p, 0, None))
            else:
                stem = os.path.splitext(os.path.basename(p))[0]
                mp = os.path.join(root, cat, "ground_truth", defect, stem + "_mask.png")
                if not os.path.isfile(mp):
                    raise SystemExit(f"missing mask {mp}")
                test.append((p, 1, mp))
    return train, test


# --------------------------------------------------------------------------------------------
# Backbone
# --------------------------------------------------------------------------------------------

class Backbone:
    def __init__(self, onnx_path, levels, size):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(onnx_path, sess_options=so,
                                         providers=["CPUExecutionProvider"])
        self.levels = levels
        self.names = [LEVEL_OUTPUTS[l] for l in levels]
        self.size = size

    def features(self, paths):
        """Return {level: float32 array (n, c, h, w)}."""
        out = {l: [] for l in self.levels}
        for i in range(0, len(paths), BATCH):
            x = np.stack([load_image(p, self.size) for p in paths[i:i + BATCH]]).astype(np.float32)
            res = self.sess.run(self.names, {"image": x})
            for l, r in zip(self.levels, res):
                out[l].append(r)
        return {l: np.concatenate(v, axis=0) for l, v in out.items()}


# --------------------------------------------------------------------------------------------
# PCA / OPCA selection (spec section 2)
# --------------------------------------------------------------------------------------------

def parse_reduction(s):
    if s == "none":
        return ("none", None)
    kind, _, t = s.partition(":")
    if kind not in ("opca", "pca") or not t:
        raise SystemExit(f"bad --reduction {s!r}: use opca:T, pca:T or none")
    t = float(t)
    if not (0.0 < t <= 1.0):
        raise SystemExit(f"bad --reduction threshold {t}: must be in (0, 1]")
    return (kind, t)


def fit_reduction(X, reduction):
    """X: (n, d) float64. Returns (mean (d,), W (d, k)) with z = (x - mean) @ W."""
    kind, t = reduction
    mean = X.mean(axis=0)
    Xc = X - mean
    cov = (Xc.T @ Xc) / X.shape[0]  # divided by N
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]  # descending
    evals = np.clip(evals[order], 0.0, None)
    evecs = evecs[:, order]
    d = len(evals)
    total = float(evals.sum())
    if kind == "none" or total <= 0.0:
        keep = np.arange(d)
    elif kind == "opca":
        # smallest trailing tail k..d whose share >= t
        keep = None
        tail = 0.0
        for m in range(1, d + 1):
            tail += float(evals[d - m])
            if tail / total >= t:
                keep = np.arange(d - m, d)
                break
        if keep is None:
            keep = np.arange(d)
    else:  # pca: leading components whose share first reaches >= t
        keep = None
        head = 0.0
        for m in range(1, d + 1):
            head += float(evals[m - 1])
            if head / total >= t:
                keep = np.arange(0, m)
                break
        if keep is None:
            keep = np.arange(d)
    return mean, evecs[:, keep], evals


# --------------------------------------------------------------------------------------------
# Gaussian (spec section 3)
# --------------------------------------------------------------------------------------------

def precision_from_sigma(sigma):
    p = sigma.shape[0]
    tr = float(np.trace(sigma))
    if not (tr > 0.0):
        return np.eye(p)
    w, v = np.linalg.eigh(sigma)
    w = np.maximum(w, 1e-9 * tr / p)
    return (v / w) @ v.T


def fit_gaussian(Z):
    """Z: (n, k) float64 -> (mu, precision, shrinkage)."""
    lw = LedoitWolf(assume_centered=False).fit(Z)
    mu = Z.mean(axis=0)
    return mu, precision_from_sigma(lw.covariance_), float(lw.shrinkage_)


def mahalanobis(Z, mu, P):
    D = Z - mu
    q = np.einsum("...i,ij,...j->...", D, P, D)
    return np.sqrt(np.maximum(q, 0.0))


# --------------------------------------------------------------------------------------------
# Bilinear upsampling, align_corners=False (PyTorch semantics)
# --------------------------------------------------------------------------------------------

def interp_matrix(n_in, n_out):
    A = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        if src < 0.0:
            src = 0.0
        i0 = int(np.floor(src))
        i0 = min(i0, n_in - 1)
        i1 = i0 + 1 if i0 < n_in - 1 else i0
        lam = src - i0
        A[o, i0] += 1.0 - lam
        A[o, i1] += lam
    return A


def upsample(maps, size):
    """maps: (n, h, w) -> (n, size, size)."""
    _, h, w = maps.shape
    Ah = interp_matrix(h, size)
    Aw = interp_matrix(w, size)
    return np.einsum("oh,nhw,pw->nop", Ah, maps, Aw)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

class Model:
    def __init__(self, levels, reduction, spatial):
        self.levels = levels
        self.reduction = reduction
        self.spatial = spatial
        self.image = {}
        self.pixel = {}
        self.info = {}

    def fit(self, feats):
        for l in self.levels:
            F = feats[l].astype(np.float64)  # (n, c, h, w)
            n, c, h, w = F.shape
            # image model: pooled vectors
            pooled = F.mean(axis=(2, 3))
            m, W, _ = fit_reduction(pooled, self.reduction)
            Z = (pooled - m) @ W
            mu, P, s = fit_gaussian(Z)
            self.image[l] = (m, W, mu, P)
            # pixel model: PCA on all training position vectors
            pos = F.transpose(0, 2, 3, 1).reshape(-1, c)
            pm, PW, _ = fit_reduction(pos, self.reduction)
            Zp = ((pos - pm) @ PW).reshape(n, h, w, -1)
            k = Zp.shape[-1]
            if self.spatial == "shared":
                pmu, pP, ps = fit_gaussian(Zp.reshape(-1, k))
                self.pixel[l] = (pm, PW, pmu, pP)
                pshr = [ps]
            else:
                mus = np.empty((h, w, k))
                Ps = np.empty((h, w, k, k))
                pshr = []
                for i in range(h):
                    for j in range(w):
                        mu_ij, P_ij, s_ij = fit_gaussian(Zp[:, i, j, :])
                        mus[i, j] = mu_ij
                        Ps[i, j] = P_ij
                        pshr.append(s_ij)
                self.pixel[l] = (pm, PW, mus, Ps)
            self.info[l] = {
                "shape": [c, h, w], "image_k": int(W.shape[1]), "pixel_k": int(k),
                "image_shrinkage": s,
                "pixel_shrinkage_mean": float(np.mean(pshr)),
            }

    def score(self, feats, size):
        pooled_score = None
        maps = []
        for l in self.levels:
            F = feats[l].astype(np.float64)
            n, c, h, w = F.shape
            m, W, mu, P = self.image[l]
            z = (F.mean(axis=(2, 3)) - m) @ W
            s = mahalanobis(z, mu, P)
            pooled_score = s if pooled_score is None else pooled_score + s
            pm, PW, pmu, pP = self.pixel[l]
            Zp = (F.transpose(0, 2, 3, 1).reshape(-1, c) - pm) @ PW
            Zp = Zp.reshape(n, h, w, -1)
            if self.spatial == "shared":
                D = Zp - pmu
                q = np.einsum("nhwi,ij,nhwj->nhw", D, pP, D)
            else:
                D = Zp - pmu[None]
                q = np.einsum("nhwi,hwij,nhwj->nhw", D, pP, D)
            smap = np.sqrt(np.maximum(q, 0.0))
            maps.append(upsample(smap, size))
        pix = np.mean(maps, axis=0)
        return pooled_score, pix


# --------------------------------------------------------------------------------------------
# Metrics (spec section 5)
# --------------------------------------------------------------------------------------------

def f1_max(labels, scores):
    p, r, thr = precision_recall_curve(labels, scores)
    denom = p + r
    f1 = np.where(denom > 0, 2 * p * r / np.where(denom > 0, denom, 1), 0.0)
    i = int(np.argmax(f1[:-1])) if len(thr) else 0
    return float(f1[i]), float(thr[i]) if len(thr) else float("nan")


def compute_pro_curve(maps, masks):
    """Official MVTec AD algorithm: returns (fprs, pros) with 0 and 1 appended."""
    structure = np.ones((3, 3), dtype=int)
    num_ok = 0
    num_regions = 0
    fp_changes = np.zeros(maps.shape, dtype=np.int64)
    pro_changes = np.zeros(maps.shape, dtype=np.float64)
    for i, gt in enumerate(masks):
        labeled, n_comp = scipy.ndimage.label(gt, structure=structure)
        num_regions += n_comp
        ok = labeled == 0
        num_ok += int(ok.sum())
        fp_changes[i][ok] = 1
        for k in range(n_comp):
            region = labeled == (k + 1)
            pro_changes[i][region] = 1.0 / region.sum()
    scores = maps.ravel()
    order = np.argsort(scores, kind="stable")[::-1]
    scores_sorted = scores[order]
    fprs = np.cumsum(fp_changes.ravel()[order]).astype(np.float64) / num_ok
    pros = np.cumsum(pro_changes.ravel()[order]) / num_regions
    keep = np.append(np.diff(scores_sorted) != 0, True)  # merge ties
    fprs = np.clip(fprs[keep], None, 1.0)
    pros = np.clip(pros[keep], None, 1.0)
    return np.concatenate(([0.0], fprs, [1.0])), np.concatenate(([0.0], pros, [1.0]))


def trapezoid(x, y, x_max):
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    mask = x <= x_max
    x = x[mask]
    y = y[mask]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def aupro(maps, masks, fpr_limit=0.3):
    fprs, pros = compute_pro_curve(maps, masks)
    return trapezoid(fprs, pros, fpr_limit) / fpr_limit


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def run_category(root, cat, backbone, args, reduction, dump):
    size = args.resize
    train, test = category_split(root, cat, size)
    t0 = time.perf_counter()
    ftrain = backbone.features(train)
    for l in backbone.levels:
        c, hw = LEVEL_SHAPES[l]
        got = ftrain[l].shape
        if size == 224 and got[1:] != (c, hw, hw):
            raise SystemExit(f"level {l} shape {got} differs from README's ({c}, {hw}, {hw})")
    model = Model(backbone.levels, reduction, args.spatial)
    model.fit(ftrain)
    del ftrain
    t1 = time.perf_counter()
    paths = [t[0] for t in test]
    ftest = backbone.features(paths)
    pooled, pix = model.score(ftest, size)
    del ftest
    t2 = time.perf_counter()

    labels = np.array([t[1] for t in test])
    masks = np.stack([load_mask(t[2], size) if t[2] else np.zeros((size, size), bool)
                      for t in test])
    mapmax = pix.reshape(len(test), -1).max(axis=1)
    img = pooled if args.image_score == "pooled" else mapmax
    f1, f1_thr = f1_max(labels, img)
    res = {
        "image_auroc": float(roc_auc_score(labels, img)),
        "pixel_auroc": float(roc_auc_score(masks.ravel().astype(np.int8), pix.ravel())),
        "aupro": aupro(pix, masks),
        "image_f1_max": f1,
        "fit_seconds": t1 - t0,
        "test_seconds": t2 - t1,
        # extras, for parity checks
        "image_f1_threshold": f1_thr,
        "image_auroc_pooled": float(roc_auc_score(labels, pooled)),
        "image_auroc_map_max": float(roc_auc_score(labels, mapmax)),
        "n_train": len(train),
        "n_test": len(test),
        "levels": {str(l): v for l, v in model.info.items()},
    }
    if dump is not None:
        for (p, lab, _), sp, sm in zip(test, pooled, mapmax):
            dump.append({"path": os.path.relpath(p, root).replace(os.sep, "/"),
                         "label": int(lab), "pooled": float(sp), "map_max": float(sm)})
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--category", nargs="*", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reduction", default="opca:0.05")
    ap.add_argument("--spatial", default="per-position", choices=["per-position", "shared"])
    ap.add_argument("--levels", default="3,4,5,6,7")
    ap.add_argument("--image-score", default="pooled", choices=["pooled", "map-max"])
    ap.add_argument("--resize", type=int, default=224)
    ap.add_argument("--onnx", default=DEFAULT_ONNX)
    ap.add_argument("--dump-scores", default=None)
    args = ap.parse_args(argv)

    reduction = parse_reduction(args.reduction)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if not levels or any(l not in LEVEL_OUTPUTS for l in levels):
        raise SystemExit(f"bad --levels {args.levels!r}: use integers 0..8")
    if args.resize != 224:
        raise SystemExit("this ONNX export has a fixed 224x224 input: --resize must be 224")
    root = args.dataset
    cats = args.category or sorted(
        d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "train", "good")))
    if not cats:
        raise SystemExit(f"no categories under {root}")

    with open(args.onnx, "rb") as f:
        onnx_sha = hashlib.sha256(f.read()).hexdigest()
    backbone = Backbone(args.onnx, levels, args.resize)
    dump = [] if args.dump_scores else None
    results = {}
    for cat in cats:
        r = run_category(root, cat, backbone, args, reduction, dump)
        results[cat] = r
        print(f"{cat:10s} image_auroc={r['image_auroc']:.4f} pixel_auroc={r['pixel_auroc']:.4f} "
              f"aupro={r['aupro']:.4f} f1={r['image_f1_max']:.4f} "
              f"fit={r['fit_seconds']:.1f}s test={r['test_seconds']:.1f}s", flush=True)
    keys = ["image_auroc", "pixel_auroc", "aupro", "image_f1_max", "fit_seconds",
            "test_seconds", "image_auroc_pooled", "image_auroc_map_max"]
    mean = {k: float(np.mean([results[c][k] for c in cats])) for k in keys}
    print(f"{'mean':10s} image_auroc={mean['image_auroc']:.4f} "
          f"pixel_auroc={mean['pixel_auroc']:.4f} aupro={mean['aupro']:.4f} "
          f"f1={mean['image_f1_max']:.4f}")
    out = {
        "config": {
            "dataset": args.dataset, "categories": cats, "reduction": args.reduction,
            "spatial": args.spatial, "levels": levels,
            "level_outputs": [LEVEL_OUTPUTS[l] for l in levels],
            "image_score": args.image_score, "resize": args.resize,
            "resize_filter": "PIL BILINEAR (antialiased when downscaling)", "crop": None,
            "mask_resize": "PIL NEAREST, defect where > 127",
            "eval_resolution": args.resize, "upsample": "bilinear, align_corners=False",
            "blur": None, "aupro_fpr_limit": 0.3,
            "backbone": "efficientnet-lite0 ONNX", "onnx_sha256": onnx_sha,
            "onnxruntime_threads": 2, "batch": BATCH,
            "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                         "scipy": scipy.__version__, "sklearn": sklearn.__version__,
                         "onnxruntime": ort.__version__,
                         "pillow": Image.__version__ if hasattr(Image, "__version__") else
                         __import__("PIL").__version__},
        },
        "categories": results,
        "mean": mean,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    if dump is not None:
        with open(args.dump_scores, "w") as f:
            json.dump({"config": out["config"], "images": dump}, f, indent=1)


if __name__ == "__main__":
    main()
