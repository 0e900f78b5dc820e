//! Selection rules and parameters (linfa style: params -> validate -> fit).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ReductionError;

/// Which principal components to keep (spec section 2). `t` is a variance share in `(0, 1]`.
///
/// Text forms (used by `FromStr`, `Display` and serde): `"opca:0.05"`, `"pca:0.95"`, `"none"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Selection {
    /// Keep the TRAILING components (smallest eigenvalues): the smallest tail `k..d` whose
    /// variance share `sum(lambda_k..d) / sum(lambda)` is `>= t` (Rippel's NPCA).
    Opca(f64),
    /// Keep the LEADING components whose cumulative variance share first reaches `>= t`.
    Pca(f64),
    /// Keep every component (a rotation onto the eigenbasis; distances are unchanged).
    None,
}

impl Default for Selection {
    fn default() -> Self {
        Self::Opca(0.05)
    }
}

impl Selection {
    /// Check the threshold: finite and in `(0, 1]`.
    pub fn check(&self) -> Result<(), ReductionError> {
        match *self {
            Self::Opca(t) | Self::Pca(t) if !(t > 0.0 && t <= 1.0) => {
                Err(ReductionError::ThresholdOutOfRange(t))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Opca(t) => write!(f, "opca:{t}"),
            Self::Pca(t) => write!(f, "pca:{t}"),
            Self::None => write!(f, "none"),
        }
    }
}

impl FromStr for Selection {
    type Err = ReductionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ReductionError::Parse {
            text: text.to_string(),
            reason,
        };
        let t = text.trim();
        if t == "none" {
            return Ok(Self::None);
        }
        let (kind, value) = t.split_once(':').ok_or_else(|| {
            err("expected \"opca:<t>\", \"pca:<t>\" or \"none\" (e.g. opca:0.05)".to_string())
        })?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| err(format!("the threshold {value:?} is not a number")))?;
        let sel = match kind.trim() {
            "opca" => Self::Opca(v),
            "pca" => Self::Pca(v),
            other => {
                return Err(err(format!(
                    "unknown rule {other:?}: expected \"opca\", \"pca\" or \"none\""
                )));
            }
        };
        sel.check().map_err(|e| err(e.to_string()))?;
        Ok(sel)
    }
}

impl TryFrom<String> for Selection {
    type Error = ReductionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Selection> for String {
    fn from(value: Selection) -> Self {
        value.to_string()
    }
}

/// Which eigenpairs the selection ranks (text forms `"full"`, `"sample"`).
///
/// With `n` samples of dimension `d` the centred data span at most `min(n - 1, d)` directions;
/// the remaining eigenvalues are exactly 0 (the null space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PcaRank {
    /// Every eigenpair of the `d x d` covariance, null space included: with `n <= d` the
    /// zero-variance directions join the kept OPCA tail (they carry the "far from every
    /// training sample" signal).
    #[default]
    Full,
    /// Only the `min(n - 1, d)` sample-supported eigenpairs (at least 1): scikit-learn's
    /// `PCA()` as Rippel et al.'s reference code uses it.
    Sample,
}

impl PcaRank {
    /// How many of `d` descending eigenpairs this rank lets the selection see, for `n` samples.
    pub fn supported(self, n: u64, d: usize) -> usize {
        match self {
            PcaRank::Full => d,
            PcaRank::Sample => usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX).min(d).max(1.min(d)),
        }
    }
}

impl fmt::Display for PcaRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PcaRank::Full => "full",
            PcaRank::Sample => "sample",
        })
    }
}

impl FromStr for PcaRank {
    type Err = ReductionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "full" => Ok(PcaRank::Full),
            "sample" => Ok(PcaRank::Sample),
            _ => Err(ReductionError::Parse {
                text: text.to_string(),
                reason: "expected \"full\" or \"sample\"".into(),
            }),
        }
    }
}

impl TryFrom<String> for PcaRank {
    type Error = ReductionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<PcaRank> for String {
    fn from(value: PcaRank) -> Self {
        value.to_string()
    }
}

/// Parameters of the reduction (a missing field takes its default when deserialised).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReductionParams {
    /// The selection rule (default `opca:0.05`).
    pub selection: Selection,
    /// Which eigenpairs the rule ranks (default `full`).
    pub rank: PcaRank,
}

impl ReductionParams {
    /// Parameters with the default selection (`opca:0.05`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the selection rule.
    pub fn with_selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// Set which eigenpairs the rule ranks.
    pub fn with_rank(mut self, rank: PcaRank) -> Self {
        self.rank = rank;
        self
    }

    /// Check the parameters (threshold in `(0, 1]`).
    pub fn validate(&self) -> Result<ValidReductionParams, ReductionError> {
        self.selection.check()?;
        Ok(ValidReductionParams {
            selection: self.selection,
            rank: self.rank,
        })
    }
}

/// Checked parameters; the `fit*` methods live here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidReductionParams {
    pub(crate) selection: Selection,
    pub(crate) rank: PcaRank,
}

impl ValidReductionParams {
    /// The selection rule.
    pub fn selection(&self) -> Selection {
        self.selection
    }

    /// Which eigenpairs the rule ranks.
    pub fn rank(&self) -> PcaRank {
        self.rank
    }
}
