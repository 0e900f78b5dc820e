//! Fuzzes the model-file loader: any byte string must load or fail cleanly, never panic.
//! Run: `cd crates/gaussad && RUSTC_BOOTSTRAP=1 cargo fuzz run model_file -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = gaussad::model_file::Model::from_bytes(data, "fuzz") {
        // whatever loads must be internally consistent
        assert!(model.detector.validate().is_ok());
    }
});
