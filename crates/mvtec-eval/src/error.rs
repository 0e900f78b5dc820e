//! The crate's error type.

use std::path::PathBuf;

/// Every error this crate returns. Messages name the problem and, where there is one, the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A file or folder could not be read or listed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (or renamed into place).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An image could not be decoded (unreadable, truncated, unsupported format).
    #[error("cannot decode image {path}: {message}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// An image could not be encoded.
    #[error("cannot encode image {path}: {message}")]
    Encode {
        /// The output file.
        path: PathBuf,
        /// What the encoder said.
        message: String,
    },
    /// The dataset root does not exist or is not a folder.
    #[error("dataset root {0} does not exist or is not a folder")]
    NoRoot(PathBuf),
    /// The dataset root holds no category (no sub-folder with `train/good`).
    #[error("no category found under {0} (a category is a sub-folder containing train/good)")]
    NoCategories(PathBuf),
    /// A requested category does not exist.
    #[error("unknown category '{name}' under {root}; available: {available}")]
    UnknownCategory {
        /// The requested name.
        name: String,
        /// The dataset root.
        root: PathBuf,
        /// The available categories, comma-separated.
        available: String,
    },
    /// A mask has a different size than its image.
    #[error("mask {mask} is {mask_w}x{mask_h} but its image {image} is {image_w}x{image_h}")]
    MaskSizeMismatch {
        /// The test image.
        image: PathBuf,
        /// The mask.
        mask: PathBuf,
        /// Image width.
        image_w: u32,
        /// Image height.
        image_h: u32,
        /// Mask width.
        mask_w: u32,
        /// Mask height.
        mask_h: u32,
    },
    /// A dataset failed validation; every problem found is listed.
    #[error("category '{category}' is invalid ({} problem(s)):\n{}", problems.len(), crate::dataset::format_issues(problems))]
    InvalidDataset {
        /// The category name.
        category: String,
        /// The problems found.
        problems: Vec<crate::dataset::DatasetIssue>,
    },
    /// Invalid parameters or arguments (zero sizes, empty inputs, mismatched lengths).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A score is NaN or infinite.
    #[error("non-finite score {value} at {location}")]
    NonFiniteScore {
        /// The offending value.
        value: f64,
        /// Where it was found (index or image/pixel).
        location: String,
    },
    /// A metric is undefined because only one class is present.
    #[error("{metric} is undefined: {reason}")]
    Undefined {
        /// The metric name.
        metric: &'static str,
        /// Why it is undefined.
        reason: String,
    },
    /// Plotting failed.
    #[error("cannot draw plot {path}: {message}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// JSON serialisation failed.
    #[error("cannot serialise to JSON: {0}")]
    Json(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, EvalError>;
