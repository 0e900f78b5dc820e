//! backbone (placeholder, being written).
#![deny(missing_docs)]
