//! mvtec-eval (placeholder, being written).
#![deny(missing_docs)]
