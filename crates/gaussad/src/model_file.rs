//! The model file: one versioned, self-checking file with everything needed to score.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `GAUSSAD\0` |
//! | 4 | format version (u32) |
//! | 8 | header length H (u64) |
//! | H | header: UTF-8 JSON ([`ModelHeader`]): config, backbone identity and weight checksum, thresholds, payload length and SHA-256 |
//! | rest | payload: the fitted [`scoring::Detector`] in `postcard` |
//!
//! Loading never executes anything from the file (no pickle): JSON and postcard are plain
//! data formats, sizes are checked against the file before anything is allocated, the payload
//! checksum is verified, and the detector is validated for internal consistency.

use std::path::Path;

use backbone::BackboneIdentity;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::MethodConfig;

/// File magic.
pub const MAGIC: &[u8; 8] = b"GAUSSAD\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Alarm thresholds stored with a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Image score above which an image is called anomalous.
    pub image: f64,
    /// Pixel score above which a pixel is marked defective.
    pub pixel: f64,
    /// Where the thresholds come from (e.g. "train-max" or "f1-max on test of CATEGORY").
    pub source: String,
}

/// Everything about a model but its numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    /// Version of gaussad that wrote the file.
    pub written_by: String,
    /// The method configuration, resolved (levels and size filled in).
    pub config: MethodConfig,
    /// Which backbone and which weights produced the features.
    pub backbone: BackboneIdentity,
    /// Alarm thresholds.
    pub thresholds: Thresholds,
    /// Number of training images.
    pub n_train: usize,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// SHA-256 of the payload, hex.
    pub payload_sha256: String,
}

/// A model: header plus fitted detector.
#[derive(Clone, Debug)]
pub struct Model {
    /// The header.
    pub header: ModelHeader,
    /// The fitted detector.
    pub detector: scoring::Detector,
}

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelFileError {
    /// I/O failure.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a gaussad model.
    #[error("{0} is not a gaussad model file (bad magic bytes)")]
    NotAModel(String),
    /// Written by another format version.
    #[error("{path} has model format version {found}; this gaussad reads version {FORMAT_VERSION} - refit the model with this version")]
    Version {
        /// The file.
        path: String,
        /// The version found.
        found: u32,
    },
    /// Truncated or corrupt.
    #[error("model file {path} is corrupt or truncated: {what}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Model {
    /// Builds a model, filling in the payload length and checksum at save time.
    pub fn new(
        config: MethodConfig,
        backbone: BackboneIdentity,
        thresholds: Thresholds,
        n_train: usize,
        detector: scoring::Detector,
    ) -> Self {
        Self {
            header: ModelHeader {
                written_by: format!("gaussad {}", env!("CARGO_PKG_VERSION")),
                config,
                backbone,
                thresholds,
                n_train,
                payload_len: 0,
                payload_sha256: String::new(),
            },
            detector,
        }
    }

    /// Serialises to bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelFileError> {
        let corrupt = |what: String| ModelFileError::Corrupt { path: "<memory>".into(), what };
        let payload = postcard::to_stdvec(&self.detector).map_err(|e| corrupt(e.to_string()))?;
        let mut header = self.header.clone();
        header.payload_len = payload.len() as u64;
        header.payload_sha256 = sha256_hex(&payload);
        let header_json = serde_json::to_vec(&header).map_err(|e| corrupt(e.to_string()))?;
        let mut out = Vec::with_capacity(20 + header_json.len() + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header_json.len() as u64).to_le_bytes());
        out.extend_from_slice(&header_json);
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Parses bytes read from `path` (only used in messages). Never panics.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Self, ModelFileError> {
        let corrupt = |what: &str| ModelFileError::Corrupt { path: path.to_string(), what: what.to_string() };
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(ModelFileError::NotAModel(path.to_string()));
        }
        let version = bytes
            .get(8..12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("file ends inside the version field"))?;
        if version != FORMAT_VERSION {
            return Err(ModelFileError::Version { path: path.to_string(), found: version });
        }
        let header_len = bytes
            .get(12..20)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| corrupt("file ends inside the header length"))?;
        if header_len > MAX_HEADER_BYTES || header_len > (bytes.len() as u64).saturating_sub(20) {
            return Err(corrupt("header length exceeds the file"));
        }
        let header_end = 20 + header_len as usize;
        let header: ModelHeader = serde_json::from_slice(&bytes[20..header_end])
            .map_err(|e| corrupt(&format!("unreadable header: {e}")))?;
        let payload = &bytes[header_end..];
        if payload.len() as u64 != header.payload_len {
            return Err(corrupt(&format!(
                "payload is {} bytes, header says {} (truncated?)",
                payload.len(),
                header.payload_len
            )));
        }
        if sha256_hex(payload) != header.payload_sha256 {
            return Err(corrupt("payload checksum mismatch"));
        }
        let detector: scoring::Detector =
            postcard::from_bytes(payload).map_err(|e| corrupt(&format!("undecodable payload: {e}")))?;
        detector
            .validate()
            .map_err(|e| corrupt(&format!("inconsistent detector: {e}")))?;
        Ok(Self { header, detector })
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        let bytes = std::fs::read(path)
            .map_err(|source| ModelFileError::Io { path: path.display().to_string(), source })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Writes the model atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let bytes = self.to_bytes()?;
        mvtec_eval::write_atomic(path, &bytes)?;
        Ok(())
    }
}
