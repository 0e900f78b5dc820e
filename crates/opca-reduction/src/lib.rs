//! opca-reduction (placeholder, being written).
#![deny(missing_docs)]
