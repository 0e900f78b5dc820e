//! Exact ranking metrics: ROC AUC (as scikit-learn's `roc_auc_score`, ties included), F1-max
//! with its threshold, and the image-level metric bundle.
//!
//! All metrics walk the scores in DESCENDING order, one group of tied scores at a time; a
//! threshold `t` predicts "anomalous" for every score `>= t`.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// A curve as two equally long coordinate lists (for plots and JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// x coordinates (false-positive rate).
    pub x: Vec<f64>,
    /// y coordinates (true-positive rate or per-region overlap).
    pub y: Vec<f64>,
}

impl Curve {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.x.len()
    }
    /// Whether the curve has no point.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// Shared state of a descending sweep over tie groups: exact ROC area (in integers) and the
/// exact F1 maximum (compared as fractions).
#[derive(Debug, Clone)]
pub(crate) struct Sweep {
    pos: u64,
    tp: u64,
    fp: u64,
    /// Sum over groups of dfp * (tp_old + tp_new): twice the ROC area times pos*neg.
    auc2: u128,
    best_tp: u64,
    best_fp: u64,
    best_thr: f64,
    have_best: bool,
}

impl Sweep {
    pub(crate) fn new(pos: u64) -> Self {
        Self { pos, tp: 0, fp: 0, auc2: 0, best_tp: 0, best_fp: 0, best_thr: f64::NAN, have_best: false }
    }

    /// Adds one group of tied scores `thr` holding `dpos` positives and `dneg` negatives.
    #[inline]
    pub(crate) fn step(&mut self, thr: f64, dpos: u64, dneg: u64) {
        let tp_new = self.tp + dpos;
        let fp_new = self.fp + dneg;
        self.auc2 += dneg as u128 * (self.tp as u128 + tp_new as u128);
        self.tp = tp_new;
        self.fp = fp_new;
        // F1 = 2tp / (tp + fp + P). New >= best  <=>  tp_n * (tp_b + fp_b + P) >= tp_b * (tp_n + fp_n + P).
        // `>=`: on exact ties the LOWER threshold (later in the descending sweep) wins, which is
        // the first maximum in scikit-learn's ascending threshold order (np.argmax).
        if tp_new > 0 {
            let lhs = tp_new as u128 * (self.best_tp as u128 + self.best_fp as u128 + self.pos as u128);
            let rhs = self.best_tp as u128 * (tp_new as u128 + fp_new as u128 + self.pos as u128);
            if !self.have_best || lhs >= rhs {
                self.best_tp = tp_new;
                self.best_fp = fp_new;
                self.best_thr = thr;
                self.have_best = true;
            }
        }
    }

    pub(crate) fn tp(&self) -> u64 {
        self.tp
    }
    pub(crate) fn fp(&self) -> u64 {
        self.fp
    }

    /// ROC AUC; requires both classes.
    pub(crate) fn auroc(&self, metric: &'static str) -> Result<f64> {
        let (p, n) = (self.pos, self.fp);
        if p == 0 || n == 0 {
            return Err(EvalError::Undefined {
                metric,
                reason: format!("needs both classes, got {p} anomalous and {n} normal"),
            });
        }
        Ok(self.auc2 as f64 / (2.0 * p as f64 * n as f64))
    }

    /// (F1-max, threshold); requires at least one positive.
    pub(crate) fn f1(&self, metric: &'static str) -> Result<(f64, f64)> {
        if !self.have_best || self.pos == 0 {
            return Err(EvalError::Undefined { metric, reason: "no anomalous sample".into() });
        }
        let f1 = 2.0 * self.best_tp as f64 / (self.best_tp as f64 + self.best_fp as f64 + self.pos as f64);
        Ok((f1, self.best_thr))
    }
}

/// Checks lengths and finiteness; returns the descending order of `scores` (ties in any order;
/// `-0.0` equals `0.0`).
fn check_and_order(scores: &[f64], labels: &[bool]) -> Result<Vec<usize>> {
    if scores.len() != labels.len() {
        return Err(EvalError::InvalidInput(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if scores.is_empty() {
        return Err(EvalError::InvalidInput("no scores".into()));
    }
    if let Some((i, &v)) = scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(EvalError::NonFiniteScore { value: v, location: format!("score index {i}") });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (sa, sb) = (scores.get(a).copied().unwrap_or(0.0) + 0.0, scores.get(b).copied().unwrap_or(0.0) + 0.0);
        sb.total_cmp(&sa)
    });
    Ok(order)
}

/// Runs the sweep over (scores, labels), calling `on_group(fp, tp)` after every tie group.
fn sweep(scores: &[f64], labels: &[bool], mut on_group: impl FnMut(u64, u64)) -> Result<Sweep> {
    let order = check_and_order(scores, labels)?;
    let pos = labels.iter().filter(|&&l| l).count() as u64;
    let mut sw = Sweep::new(pos);
    let mut k = 0;
    while let Some(&first) = order.get(k) {
        let thr = scores.get(first).copied().unwrap_or(0.0);
        let (mut dp, mut dn) = (0u64, 0u64);
        while let Some(&i) = order.get(k) {
            if scores.get(i).copied().unwrap_or(0.0) != thr {
                break;
            }
            if labels.get(i).copied().unwrap_or(false) {
                dp += 1;
            } else {
                dn += 1;
            }
            k += 1;
        }
        sw.step(thr, dp, dn);
        on_group(sw.fp(), sw.tp());
    }
    Ok(sw)
}

/// Area under the ROC curve, equal to scikit-learn's `roc_auc_score(labels, scores)`: ties are
/// one ROC point (their area is a trapezoid). Computed exactly in integers, then divided.
///
/// Errors: length mismatch, empty input, NaN/inf score, or a single class present.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64> {
    sweep(scores, labels, |_, _| {})?.auroc("ROC AUC")
}

/// Maximum F1 score over all thresholds and the threshold reaching it, as from scikit-learn's
/// `precision_recall_curve(labels, scores)`.
///
/// Convention: the candidate thresholds are the distinct scores; threshold `t` predicts
/// anomalous for `score >= t`; `F1 = 2 tp / (2 tp + fp + fn)` (= 2PR/(P+R)), and a threshold
/// with no true positive has F1 = 0 (never NaN). The returned threshold is the score at which F1
/// is maximal; if several distinct thresholds reach the same maximum exactly, the LOWEST one is
/// returned (the first `np.argmax` over scikit-learn's ascending `thresholds`). Ties are compared
/// exactly as fractions of counts.
///
/// Errors: length mismatch, empty input, NaN/inf score, or no positive label.
pub fn f1_max(scores: &[f64], labels: &[bool]) -> Result<(f64, f64)> {
    sweep(scores, labels, |_, _| {})?.f1("F1-max")
}

/// Image-level metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMetrics {
    /// ROC AUC (scikit-learn `roc_auc_score`).
    pub auroc: f64,
    /// Maximum F1 (see [`f1_max`]).
    pub f1_max: f64,
    /// The score threshold of the maximum F1.
    pub f1_threshold: f64,
    /// ROC curve (x = FPR, y = TPR), starting at (0, 0), one point per distinct score.
    pub roc: Curve,
    /// Number of anomalous samples.
    pub n_anomalous: usize,
    /// Number of normal samples.
    pub n_normal: usize,
}

impl ImageMetrics {
    /// Computes all image metrics from per-image scores and labels (true = anomalous).
    pub fn compute(scores: &[f64], labels: &[bool]) -> Result<ImageMetrics> {
        let pos = labels.iter().filter(|&&l| l).count();
        let neg = labels.len().saturating_sub(pos);
        let mut pts = vec![(0u64, 0u64)];
        let sw = sweep(scores, labels, |fp, tp| pts.push((fp, tp)))?;
        let auroc = sw.auroc("image AUROC")?;
        let (f1_max, f1_threshold) = sw.f1("image F1-max")?;
        let roc = Curve {
            x: pts.iter().map(|&(fp, _)| fp as f64 / neg as f64).collect(),
            y: pts.iter().map(|&(_, tp)| tp as f64 / pos as f64).collect(),
        };
        Ok(ImageMetrics { auroc, f1_max, f1_threshold, roc, n_anomalous: pos, n_normal: neg })
    }
}
