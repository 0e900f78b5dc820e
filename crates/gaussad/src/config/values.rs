//! Value types of the options that have no richer type in the crate that implements them:
//! each checks its own range when parsed (from text or through serde), so an invalid value
//! never gets past the command line, a TOML file or a model header.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A number checked on parse, serialised as the bare number.
macro_rules! checked_number {
    ($(#[$meta:meta])* $name:ident($inner:ty, $inner_str:literal) = $default:expr; |$v:ident| $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[serde(try_from = $inner_str, into = $inner_str)]
        pub struct $name(pub $inner);

        impl $name {
            fn checked($v: $inner) -> Result<Self, String> {
                let ok: Result<(), String> = $check;
                ok.map(|()| Self($v))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self($default)
            }
        }

        impl TryFrom<$inner> for $name {
            type Error = String;
            fn try_from(v: $inner) -> Result<Self, String> {
                Self::checked(v)
            }
        }

        impl From<$name> for $inner {
            fn from(v: $name) -> $inner {
                v.0
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                let v: $inner = text.trim().parse().map_err(|e| format!("{text:?} is not a number ({e})"))?;
                Self::checked(v)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

checked_number! {
    /// Square network input size in pixels; 0 = the backbone's default, else 32..=4096.
    InputSize(u32, "u32") = 0;
    |v| if v == 0 || (32..=4096).contains(&v) { Ok(()) } else { Err(format!("{v} is not 0 (the backbone's size) or between 32 and 4096")) }
}

checked_number! {
    /// Centre crop in pixels after the resize; 0 = none, else 16..=4096 (and at most the input
    /// size, checked against the backbone).
    CenterCrop(u32, "u32") = 0;
    |v| if v == 0 || (16..=4096).contains(&v) { Ok(()) } else { Err(format!("{v} is not 0 (no crop) or between 16 and 4096")) }
}

checked_number! {
    /// Gaussian blur sigma of the pixel map in pixels; 0 = off, at most 100.
    BlurSigma(f64, "f64") = 0.0;
    |v| if v.is_finite() && (0.0..=100.0).contains(&v) { Ok(()) } else { Err(format!("{v} is not a number between 0 and 100")) }
}

/// The largest batch size accepted (the backbone's activations of a batch must fit in memory;
/// the extractor also checks its own memory budget).
pub const MAX_BATCH_SIZE: usize = 256;

checked_number! {
    /// Images per backbone batch, 1..=[`MAX_BATCH_SIZE`].
    BatchSize(usize, "usize") = 8;
    |v| if (1..=MAX_BATCH_SIZE).contains(&v) { Ok(()) } else { Err(format!("{v} is not between 1 and {MAX_BATCH_SIZE}")) }
}

checked_number! {
    /// Folds of the out-of-fold calibration, 2..=1000 (capped at the number of training images).
    Folds(usize, "usize") = 5;
    |v| if (2..=1000).contains(&v) { Ok(()) } else { Err(format!("{v} is not between 2 and 1000")) }
}

checked_number! {
    /// A target false-alarm rate in (0, 0.5].
    Rate(f64, "f64") = 0.05;
    |v| if v.is_finite() && v > 0.0 && v <= 0.5 { Ok(()) } else { Err(format!("{v} is not a rate in (0, 0.5]")) }
}

impl InputSize {
    /// The size, or `None` for the backbone's default.
    pub fn get(self) -> Option<u32> {
        (self.0 != 0).then_some(self.0)
    }
}

impl CenterCrop {
    /// The crop, or `None` for no crop.
    pub fn get(self) -> Option<u32> {
        (self.0 != 0).then_some(self.0)
    }
}

impl BlurSigma {
    /// The sigma, or `None` when off.
    pub fn get(self) -> Option<f64> {
        (self.0 > 0.0).then_some(self.0)
    }
}

/// Levels to tap, in order, each at most once; empty = the backbone's default. Text form
/// `3,4,5,6,7`; TOML/JSON form a list of integers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<usize>", into = "Vec<usize>")]
pub struct Levels(Vec<usize>);

/// The largest level index any backbone has (checked against the backbone later).
const MAX_LEVEL: usize = 64;

impl Levels {
    /// Checks that no level repeats and none is absurd.
    pub fn new(levels: Vec<usize>) -> Result<Self, String> {
        if let Some(bad) = levels.iter().find(|&&l| l > MAX_LEVEL) {
            return Err(format!("level {bad} does not exist"));
        }
        let mut seen = levels.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != levels.len() {
            return Err(format!("a level is listed twice in {levels:?}"));
        }
        Ok(Self(levels))
    }

    /// The levels (empty = the backbone's default).
    pub fn as_slice(&self) -> &[usize] {
        &self.0
    }
}

impl TryFrom<Vec<usize>> for Levels {
    type Error = String;
    fn try_from(v: Vec<usize>) -> Result<Self, String> {
        Self::new(v)
    }
}

impl From<Levels> for Vec<usize> {
    fn from(v: Levels) -> Vec<usize> {
        v.0
    }
}

impl FromStr for Levels {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() || t == "default" {
            return Ok(Self::default());
        }
        let levels = t
            .split(',')
            .map(|p| p.trim().parse::<usize>().map_err(|_| format!("{p:?} is not a level number (write e.g. 3,4,5)")))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(levels)
    }
}

impl fmt::Display for Levels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// The padding / batch-norm convention of EfficientNet weights: `auto` (told from the weights
/// file; a file that cannot tell is refused with a message naming this option), `tf` or
/// `pytorch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConventionChoice(pub Option<backbone::Convention>);

impl FromStr for ConventionChoice {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(Self(None)),
            t => t.parse().map(|c| Self(Some(c))).map_err(|e: backbone::BackboneError| format!("{e} (or auto)")),
        }
    }
}

impl TryFrom<String> for ConventionChoice {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        v.parse()
    }
}

impl From<ConventionChoice> for String {
    fn from(v: ConventionChoice) -> String {
        v.to_string()
    }
}

impl fmt::Display for ConventionChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("auto"),
            Some(c) => c.fmt(f),
        }
    }
}

/// The compute device, in its text form `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceChoice(pub backbone::Device);

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        text.parse().map(Self).map_err(|e: backbone::BackboneError| e.to_string())
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        v.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(v: DeviceChoice) -> String {
        v.to_string()
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_from_text_and_serde() {
        assert!("0".parse::<InputSize>().is_ok() && "224".parse::<InputSize>().is_ok());
        assert!("5000".parse::<InputSize>().is_err() && "8".parse::<InputSize>().is_err());
        assert!(serde_json::from_str::<InputSize>("5000").is_err());
        assert!("nan".parse::<BlurSigma>().is_err() && "-1".parse::<BlurSigma>().is_err() && "inf".parse::<BlurSigma>().is_err());
        assert!("0".parse::<BatchSize>().is_err() && "100000".parse::<BatchSize>().is_err());
        assert!(serde_json::from_str::<BatchSize>("0").is_err());
        assert!("3,3".parse::<Levels>().is_err() && "3,x".parse::<Levels>().is_err());
        assert_eq!("3, 4".parse::<Levels>().unwrap().as_slice(), &[3, 4]);
        assert!(serde_json::from_str::<Levels>("[4, 4]").is_err());
        assert_eq!(serde_json::to_string(&"cuda:2".parse::<DeviceChoice>().unwrap()).unwrap(), "\"cuda:2\"");
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }
}
