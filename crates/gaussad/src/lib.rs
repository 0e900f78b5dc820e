//! gaussad: unsupervised visual anomaly detection with Gaussian models of deep features.
//!
//! This crate is the thin layer users run: it composes the pipeline crates
//! (`backbone` -> `opca-reduction` -> `gaussian-fit` -> `scoring` -> `mvtec-eval`) and owns
//! files, flags and progress. See docs/ARCHITECTURE.md at the repository root.
#![deny(missing_docs)]

pub mod ablate;
pub mod cli;
pub mod config;
pub mod eval;
pub mod features;
pub mod files;
pub mod inputs;
pub mod model_file;
pub mod pipeline;
pub mod predict;
pub mod progress;
