//! # xtask
//!
//! Project automation for gaussad, run as `cargo xtask ...`. Today it owns downloads:
//! backbone weights from the ONNX Model Zoo (SHA-256 verified, then checked to be
//! ImageNet-pretrained, see [`pretrained`]) and the MVTec AD dataset; every download
//! is SHA-256 verified, resumable over HTTP `Range`, written under a temporary name and renamed into
//! place, and (for `.tar.xz`) extracted safely.
//!
//! The library exists so the commands can be tested in-process against a local server.
//!
//! ```
//! use xtask::fetch::{Expected, FetchOptions, import_file, sha256_file};
//!
//! let dir = std::env::temp_dir().join(format!("xtask-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let src = dir.join("source.bin");
//! std::fs::write(&src, b"abc")?;
//! // SHA-256("abc") from FIPS 180-2, appendix B.1.
//! let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
//! let report = import_file(&src, &dir.join("copy.bin"), &Expected::sha256(abc, Some(3))?, FetchOptions { quiet: true })?;
//! assert_eq!(sha256_file(&report.path)?.0, abc);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod ablate;
pub mod cli;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod pretrained;
pub mod registry;

pub use error::{Error, Result};
