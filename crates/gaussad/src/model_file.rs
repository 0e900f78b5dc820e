//! The model file: one versioned, self-checking file with everything needed to score and to
//! give verdicts.
//!
//! Layout (format 2; all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `GAUSSAD\0` |
//! | 4 | format version (u32) |
//! | 8 | header length H (u64) |
//! | H | header: UTF-8 JSON ([`ModelHeader`]): config, backbone identity and weight checksum, calibration (thresholds and the normal scores they come from), payload length |
//! | P | payload: the fitted [`scoring::Detector`] in `postcard` |
//! | 32 | SHA-256 of every byte before it (magic, version, header and payload) |
//!
//! Loading never executes anything from the file (no pickle): JSON and postcard are plain
//! data formats, the file is read up to a size cap, sizes are checked against the file before
//! anything is allocated, the checksum covers the header too, and every header value is
//! validated (the config by its types, the thresholds against the stored normal scores, the
//! detector against the config).
//!
//! Format 1 (before out-of-sample calibration) stored in-sample thresholds that flag nearly
//! every unseen image; such files are refused with a message to refit.

use std::path::Path;

use backbone::BackboneIdentity;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::MethodConfig;
use crate::pipeline::Calibration;

/// File magic.
pub const MAGIC: &[u8; 8] = b"GAUSSAD\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// The largest model file read (models are a few MB; B4 with every level is under 200 MB).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;
const MAX_HEADER_BYTES: u64 = 16 << 20;
const PREFIX: usize = 20;
const CHECKSUM: usize = 32;

/// Everything about a model but its numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelHeader {
    /// Version of gaussad that wrote the file.
    pub written_by: String,
    /// The method configuration, checked (levels and size filled in).
    pub config: MethodConfig,
    /// Which backbone and which weights produced the features.
    pub backbone: BackboneIdentity,
    /// Alarm thresholds and the out-of-fold normal scores they come from.
    pub calibration: Calibration,
    /// Number of training images.
    pub n_train: usize,
    /// Payload length in bytes.
    pub payload_len: u64,
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
    #[error("{path} has model format version {found}; this gaussad reads version {FORMAT_VERSION}{hint} - refit the model with this version (gaussad fit)")]
    Version {
        /// The file.
        path: String,
        /// The version found.
        found: u32,
        /// Why that version is not read.
        hint: &'static str,
    },
    /// Truncated, corrupt or forged.
    #[error("model file {path} is corrupt or truncated: {what}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
}

impl Model {
    /// Builds a model.
    pub fn new(
        config: MethodConfig,
        backbone: BackboneIdentity,
        calibration: Calibration,
        n_train: usize,
        detector: scoring::Detector,
    ) -> Self {
        Self {
            header: ModelHeader {
                written_by: format!("gaussad {}", env!("CARGO_PKG_VERSION")),
                config,
                backbone,
                calibration,
                n_train,
                payload_len: 0,
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
        let header_json = serde_json::to_vec(&header).map_err(|e| corrupt(e.to_string()))?;
        let mut out = Vec::with_capacity(PREFIX + header_json.len() + payload.len() + CHECKSUM);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header_json.len() as u64).to_le_bytes());
        out.extend_from_slice(&header_json);
        out.extend_from_slice(&payload);
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Parses bytes read from `path` (only used in messages). Never panics.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Self, ModelFileError> {
        let corrupt = |what: &str| ModelFileError::Corrupt { path: path.to_string(), what: what.to_string() };
        if bytes.get(..8) != Some(MAGIC.as_slice()) {
            return Err(ModelFileError::NotAModel(path.to_string()));
        }
        let version = bytes
            .get(8..12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("file ends inside the version field"))?;
        if version != FORMAT_VERSION {
            let hint = if version == 1 {
                " (format 1 stored in-sample thresholds that flag nearly every unseen image)"
            } else {
                ""
            };
            return Err(ModelFileError::Version { path: path.to_string(), found: version, hint });
        }
        let body_len = bytes.len().checked_sub(CHECKSUM).filter(|&l| l >= PREFIX).ok_or_else(|| corrupt("file too short"))?;
        let (body, stored) = bytes.split_at(body_len);
        if Sha256::digest(body).as_slice() != stored {
            return Err(corrupt("checksum mismatch (the file was changed or cut)"));
        }
        let header_len = body
            .get(12..PREFIX)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| corrupt("file ends inside the header length"))?;
        if header_len > MAX_HEADER_BYTES || header_len > (body.len() - PREFIX) as u64 {
            return Err(corrupt("header length exceeds the file"));
        }
        let header_end = PREFIX + header_len as usize;
        let header: ModelHeader = body
            .get(PREFIX..header_end)
            .ok_or_else(|| corrupt("header exceeds the file"))
            .and_then(|h| serde_json::from_slice(h).map_err(|e| corrupt(&format!("unreadable header: {e}"))))?;
        let payload = body.get(header_end..).unwrap_or_default();
        if payload.len() as u64 != header.payload_len {
            return Err(corrupt(&format!("payload is {} bytes, header says {}", payload.len(), header.payload_len)));
        }
        let detector: scoring::Detector =
            postcard::from_bytes(payload).map_err(|e| corrupt(&format!("undecodable payload: {e}")))?;
        let model = Self { header, detector };
        model.validate().map_err(|e| corrupt(&format!("{e:#}")))?;
        Ok(model)
    }

    /// Checks that the header values are valid and agree with each other and the detector.
    pub fn validate(&self) -> anyhow::Result<()> {
        let h = &self.header;
        self.detector.validate().map_err(|e| anyhow::anyhow!("inconsistent detector: {e}"))?;
        h.calibration.validate()?;
        let levels = h.config.levels.as_slice();
        if levels.is_empty() || levels != h.backbone.levels.as_slice() || self.detector.levels().len() != levels.len() {
            anyhow::bail!("the levels of the config, the backbone and the detector disagree");
        }
        if h.config.resize.get() != Some(h.backbone.input_size) {
            anyhow::bail!("the input size of the config and the backbone disagree");
        }
        if h.n_train < scoring::MIN_TRAINING_IMAGES || h.calibration.n_train != h.n_train {
            anyhow::bail!("implausible number of training images {}", h.n_train);
        }
        if h.config.image_score != self.detector.params().image_score {
            anyhow::bail!("the image score of the config and the detector disagree");
        }
        Ok(())
    }

    /// Reads and checks a model file (at most [`MAX_MODEL_BYTES`]).
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        let io = |source| ModelFileError::Io { path: path.display().to_string(), source };
        let mut head = [0u8; 8];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(io)?;
            let n = f.read(&mut head).map_err(io)?;
            if head.get(..n) != MAGIC.get(..n) || n < 8 {
                return Err(ModelFileError::NotAModel(path.display().to_string()));
            }
        }
        let bytes = crate::files::read_capped(path, MAX_MODEL_BYTES)
            .map_err(|e| ModelFileError::Corrupt { path: path.display().to_string(), what: e.to_string() })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Writes the model atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let bytes = self.to_bytes()?;
        mvtec_eval::write_atomic(path, &bytes)?;
        Ok(())
    }
}
