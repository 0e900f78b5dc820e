//! Alarm thresholds from the scores of normal images that the scoring model did NOT fit on
//! (out-of-fold scores of the training images, or a separate validation folder). A model
//! scores its own training images far below any unseen image, so thresholds taken from
//! in-sample scores flag every new image; these do not.
//!
//! - [`NormalScores`] (image scores, a few hundred values, all kept): the threshold for a
//!   target false-alarm rate `a` is the conformal order statistic - with `n` scores sorted
//!   ascending and `k = floor(a (n + 1))`, the `k`-th largest. If a new normal image's score is
//!   exchangeable with the `n` (it comes from the same distribution and was scored the same
//!   way), the probability that it exceeds the threshold is `k / (n + 1) <= a`. With
//!   `k = 0` (`n < 1/a - 1`) no threshold meets the target: that is an error, not a guess.
//! - [`QuantileSketch`] (pixel scores, millions of values): the order statistics at a fixed
//!   grid of probabilities, dense in the upper tail (down to 1e-7), so thresholds for any
//!   target can be read back later without the values.
//!
//! ```
//! use scoring::NormalScores;
//!
//! let scores = NormalScores::new((1..=39).map(f64::from).collect())?;
//! // k = floor(0.05 * 40) = 2: the second largest score.
//! assert_eq!(scores.threshold(0.05)?, 38.0);
//! assert_eq!(scores.expected_fpr(0.05)?, 2.0 / 40.0);
//! assert!(scores.threshold(0.01).is_err()); // 39 scores cannot promise 1 %
//! # Ok::<(), scoring::ScoringError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::ScoringError;

/// Checks a target false-alarm rate: finite, in `(0, 0.5]`.
pub fn check_target_fpr(target: f64) -> Result<(), ScoringError> {
    if target.is_finite() && target > 0.0 && target <= 0.5 {
        Ok(())
    } else {
        Err(ScoringError::InvalidParams(format!("target false-alarm rate must be in (0, 0.5], got {target}")))
    }
}

/// Scores of normal images the scoring model did not fit on, sorted ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalScores {
    sorted: Vec<f64>,
}

impl NormalScores {
    /// Sorts the scores; every score must be finite.
    pub fn new(mut scores: Vec<f64>) -> Result<Self, ScoringError> {
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(ScoringError::NonFinite { what: "normal scores".into() });
        }
        scores.sort_by(f64::total_cmp);
        Ok(Self { sorted: scores })
    }

    /// Number of scores.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The scores, ascending.
    pub fn sorted(&self) -> &[f64] {
        &self.sorted
    }

    /// How many normal scores the rule needs for `target`: `ceil(1 / target) - 1`.
    pub fn needed_for(target: f64) -> usize {
        ((1.0 / target).ceil() as usize).saturating_sub(1).max(1)
    }

    fn rank(&self, target: f64) -> Result<usize, ScoringError> {
        check_target_fpr(target)?;
        let n = self.sorted.len();
        let k = (target * (n as f64 + 1.0)).floor() as usize;
        if k == 0 {
            return Err(ScoringError::TooFewNormalScores { got: n, target, needed: Self::needed_for(target) });
        }
        Ok(k.min(n))
    }

    /// The threshold for false-alarm rate `target` (an image is anomalous when its score is
    /// ABOVE it): the `k`-th largest score, `k = floor(target (n + 1))`.
    pub fn threshold(&self, target: f64) -> Result<f64, ScoringError> {
        let k = self.rank(target)?;
        self.sorted
            .get(self.sorted.len() - k)
            .copied()
            .ok_or(ScoringError::TooFewNormalScores { got: 0, target, needed: Self::needed_for(target) })
    }

    /// The false-alarm rate the threshold for `target` promises: `k / (n + 1)`.
    pub fn expected_fpr(&self, target: f64) -> Result<f64, ScoringError> {
        Ok(self.rank(target)? as f64 / (self.sorted.len() as f64 + 1.0))
    }

    /// Fraction of the normal scores at or below `score` (its out-of-fold percentile / 100).
    pub fn percentile(&self, score: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        self.sorted.partition_point(|&s| s <= score) as f64 / self.sorted.len() as f64
    }
}

/// The order statistics of a large set of normal scores at fixed probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileSketch {
    n: u64,
    probs: Vec<f64>,
    values: Vec<f64>,
}

/// The probabilities a sketch keeps: 0, 0.01, ..., 0.99, then `1 - 10^-x` for x = 2.02 ..= 7
/// in steps of 0.02, then 1 (the maximum).
fn sketch_probs() -> Vec<f64> {
    let mut p: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
    p.extend((101..=350).map(|i| 1.0 - 10f64.powf(-f64::from(i) / 50.0)));
    p.push(1.0);
    p
}

impl QuantileSketch {
    /// Sketches `values` (sorted in place); every value must be finite and there must be one.
    pub fn from_values(values: &mut [f32]) -> Result<Self, ScoringError> {
        if values.is_empty() {
            return Err(ScoringError::EmptyInput { what: "normal pixel scores".into() });
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ScoringError::NonFinite { what: "normal pixel scores".into() });
        }
        values.sort_by(f32::total_cmp);
        let n = values.len();
        let probs = sketch_probs();
        let values = probs
            .iter()
            .map(|&p| {
                // The smallest value with at least a fraction p of the values at or below it.
                let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
                values.get(i).map_or(f64::NAN, |&v| f64::from(v))
            })
            .collect();
        Ok(Self { n: n as u64, probs, values })
    }

    /// Number of values sketched.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The `p`-quantile (linear between the kept probabilities; `p` clamped to [0, 1]).
    pub fn quantile(&self, p: f64) -> f64 {
        let p = p.clamp(0.0, 1.0);
        let j = self.probs.partition_point(|&q| q < p);
        match (j.checked_sub(1).and_then(|i| self.probs.get(i).zip(self.values.get(i))), self.probs.get(j).zip(self.values.get(j))) {
            (_, Some((&q, &v))) if q == p => v,
            (Some((&q0, &v0)), Some((&q1, &v1))) => v0 + (v1 - v0) * (p - q0) / (q1 - q0),
            (None, Some((_, &v))) | (Some((_, &v)), None) => v,
            (None, None) => f64::NAN,
        }
    }

    /// The threshold for false-alarm rate `target` (a pixel is a defect when its score is above
    /// it): the `1 - target` quantile. Needs `target >= 1 / n` and `target >= 1e-7`.
    pub fn threshold(&self, target: f64) -> Result<f64, ScoringError> {
        if !(target.is_finite() && target > 0.0 && target <= 0.5) {
            return Err(ScoringError::InvalidParams(format!("pixel false-alarm rate must be in (0, 0.5], got {target}")));
        }
        if target * (self.n as f64) < 1.0 || target < 1e-7 {
            return Err(ScoringError::TooFewNormalScores {
                got: self.n as usize,
                target,
                needed: (1.0 / target).ceil() as usize,
            });
        }
        Ok(self.quantile(1.0 - target))
    }

    /// Checks a deserialised sketch: probabilities and values ascending and finite.
    pub fn validate(&self) -> Result<(), ScoringError> {
        let ok = self.probs.len() == self.values.len()
            && !self.probs.is_empty()
            && self.values.iter().chain(&self.probs).all(|v| v.is_finite())
            && self.probs.windows(2).all(|w| w[0] < w[1])
            && self.values.windows(2).all(|w| w[0] <= w[1]);
        if ok { Ok(()) } else { Err(ScoringError::InvalidParams("inconsistent quantile sketch".into())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformal_rank_and_refusal() {
        let s = NormalScores::new(vec![3.0, 1.0, 2.0, 5.0, 4.0]).unwrap();
        assert_eq!(s.sorted(), &[1.0, 2.0, 3.0, 4.0, 5.0]);
        // n = 5: a = 0.2 -> k = floor(1.2) = 1 -> the maximum.
        assert_eq!(s.threshold(0.2).unwrap(), 5.0);
        assert_eq!(s.threshold(0.34).unwrap(), 4.0);
        assert!(matches!(s.threshold(0.1), Err(ScoringError::TooFewNormalScores { got: 5, needed: 9, .. })));
        assert!(s.threshold(0.0).is_err() && s.threshold(f64::NAN).is_err() && s.threshold(0.7).is_err());
        assert!(NormalScores::new(vec![1.0, f64::INFINITY]).is_err());
        assert_eq!(s.percentile(3.0), 0.6);
        assert_eq!(s.percentile(0.5), 0.0);
    }

    #[test]
    fn sketch_quantiles_are_order_statistics() {
        let mut v: Vec<f32> = (1..=1000).map(|i| i as f32).collect();
        v.reverse();
        let s = QuantileSketch::from_values(&mut v).unwrap();
        s.validate().unwrap();
        assert_eq!(s.quantile(0.5), 500.0);
        assert_eq!(s.quantile(1.0), 1000.0);
        assert_eq!(s.quantile(0.0), 1.0);
        assert_eq!(s.threshold(0.01).unwrap(), 990.0);
        assert!(s.threshold(0.0001).is_err());
        let q = s.quantile(0.995);
        assert!((994.0..=996.0).contains(&q), "{q}");
    }
}
