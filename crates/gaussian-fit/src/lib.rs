//! gaussian-fit (placeholder, being written).
#![deny(missing_docs)]
