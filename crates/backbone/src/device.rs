//! Compute device selection.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::BackboneError;

/// Where the network runs. Parsed from `"cpu"`, `"cuda"` (= `cuda:0`) or `"cuda:N"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Device {
    /// CPU (burn-flex backend, SIMD + rayon). Deterministic.
    #[default]
    Cpu,
    /// CUDA GPU number N (burn-cuda; needs the `cuda` crate feature and a driver).
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = BackboneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        if t == "cpu" {
            return Ok(Device::Cpu);
        }
        if t == "cuda" || t == "gpu" {
            return Ok(Device::Cuda(0));
        }
        if let Some(n) = t.strip_prefix("cuda:") {
            return n
                .parse()
                .map(Device::Cuda)
                .map_err(|_| BackboneError::Device {
                    device: s.to_string(),
                    reason: "expected cuda:N with N a device number".into(),
                });
        }
        Err(BackboneError::Device {
            device: s.to_string(),
            reason: "expected \"cpu\", \"cuda\" or \"cuda:N\"".into(),
        })
    }
}

impl Device {
    /// Whether this build can use CUDA at all (the `cuda` feature).
    pub fn cuda_compiled() -> bool {
        cfg!(feature = "cuda")
    }
}

/// Looks for the CUDA driver library, so that a missing driver gives an error rather than
/// a panic inside the CUDA bindings.
#[cfg(feature = "cuda")]
pub(crate) fn cuda_driver_present() -> bool {
    let mut dirs: Vec<std::path::PathBuf> = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/cuda/lib64",
        "/usr/local/cuda/compat",
        "/usr/lib/wsl/lib",
        "/usr/local/nvidia/lib64",
        "/usr/local/nvidia/lib",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .collect();
    if let Ok(p) = std::env::var("LD_LIBRARY_PATH") {
        dirs.extend(
            p.split(':')
                .filter(|s| !s.is_empty())
                .map(std::path::PathBuf::from),
        );
    }
    dirs.iter()
        .any(|d| d.join("libcuda.so.1").exists() || d.join("libcuda.so").exists())
}
