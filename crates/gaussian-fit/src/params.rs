//! Estimator choice and parameters (linfa style: params -> validate -> fit).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::GaussianError;

/// How the covariance of the Gaussian is estimated from the centred samples
/// (`S = X^T X / n`, the empirical covariance divided by N).
///
/// Text forms (used by `FromStr`, `Display` and serde): `"ledoit-wolf"`, `"empirical"`,
/// `"ridge:0.01"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(try_from = "String", into = "String")]
pub enum CovarianceEstimator {
    /// Ledoit-Wolf shrinkage exactly as scikit-learn's `LedoitWolf`:
    /// `Sigma = (1 - s) S + s m I` with `m = tr(S)/p` and the shrinkage `s` estimated from
    /// the data (0 when the estimate is degenerate, see the crate docs).
    #[default]
    LedoitWolf,
    /// The empirical covariance `S` (divided by N).
    Empirical,
    /// `S + eps I` (PaDiM adds `0.01 I`; note that PaDiM's `S` is divided by N - 1 while this
    /// crate's is divided by N).
    Ridge(f64),
}

impl CovarianceEstimator {
    /// Check the estimator's own parameter (the ridge must be finite and `>= 0`).
    pub fn check(&self) -> Result<(), GaussianError> {
        match self {
            Self::Ridge(eps) if !(eps.is_finite() && *eps >= 0.0) => {
                Err(GaussianError::InvalidParameter(format!(
                    "the ridge must be finite and >= 0, got {eps}"
                )))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for CovarianceEstimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LedoitWolf => write!(f, "ledoit-wolf"),
            Self::Empirical => write!(f, "empirical"),
            Self::Ridge(eps) => write!(f, "ridge:{eps}"),
        }
    }
}

impl FromStr for CovarianceEstimator {
    type Err = GaussianError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| GaussianError::Parse {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        let parsed = match t {
            "ledoit-wolf" => Self::LedoitWolf,
            "empirical" => Self::Empirical,
            _ => match t.strip_prefix("ridge:") {
                Some(v) => {
                    let eps: f64 = v
                        .trim()
                        .parse()
                        .map_err(|_| err("the ridge after \"ridge:\" is not a number"))?;
                    Self::Ridge(eps)
                }
                None => {
                    return Err(err(
                        "expected \"ledoit-wolf\", \"empirical\" or \"ridge:<eps>\" (e.g. ridge:0.01)",
                    ));
                }
            },
        };
        parsed.check().map_err(|e| err(&e.to_string()))?;
        Ok(parsed)
    }
}

impl TryFrom<String> for CovarianceEstimator {
    type Error = GaussianError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<CovarianceEstimator> for String {
    fn from(value: CovarianceEstimator) -> Self {
        value.to_string()
    }
}

/// Parameters of the Gaussian fit (a missing field takes its default when deserialised).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GaussianParams {
    /// The covariance estimator (default Ledoit-Wolf).
    pub estimator: CovarianceEstimator,
}

impl GaussianParams {
    /// Parameters with the default estimator (Ledoit-Wolf).
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the covariance estimator.
    pub fn with_estimator(mut self, estimator: CovarianceEstimator) -> Self {
        self.estimator = estimator;
        self
    }

    /// Check the parameters.
    pub fn validate(&self) -> Result<ValidGaussianParams, GaussianError> {
        self.estimator.check()?;
        Ok(ValidGaussianParams {
            estimator: self.estimator,
        })
    }
}

/// Checked parameters; the `fit*` methods live here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidGaussianParams {
    pub(crate) estimator: CovarianceEstimator,
}

impl ValidGaussianParams {
    /// The covariance estimator.
    pub fn estimator(&self) -> CovarianceEstimator {
        self.estimator
    }
}
