//! Helpers shared by the integration tests: fixture loading and tolerant comparison.
#![allow(dead_code)]

use ndarray::{Array2, Array3};
use serde_json::Value;

pub fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

pub fn u(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

pub fn vec1(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

pub fn arr2(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(vec1).collect();
    let h = rows.len();
    let w = rows.first().map_or(0, Vec::len);
    Array2::from_shape_vec((h, w), rows.into_iter().flatten().collect()).unwrap()
}

pub fn arr3(v: &Value) -> Array3<f64> {
    let planes: Vec<Array2<f64>> = v.as_array().unwrap().iter().map(arr2).collect();
    let (h, w) = planes[0].dim();
    let c = planes.len();
    Array3::from_shape_vec((c, h, w), planes.iter().flatten().copied().collect()).unwrap()
}

/// |a - b| <= rel * max(|a|, |b|, 1e-12)-ish: relative with a tiny absolute floor for zeros.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-6)
}

pub fn assert_close2(got: &Array2<f64>, exp: &Array2<f64>, rel: f64, what: &str) {
    assert_eq!(got.dim(), exp.dim(), "{what}: shape");
    for ((idx, g), e) in got.indexed_iter().zip(exp.iter()) {
        assert!(
            close(*g, *e, rel),
            "{what} at {idx:?}: got {g}, expected {e}"
        );
    }
}
