//! Parity of upsampling, blur and level combination against the NumPy/SciPy reference
//! (tests/fixtures/generate.py) and against PyTorch's documented example.

mod common;
use common::*;
use ndarray::array;
use scoring::{ScoringError, combine_levels, gaussian_blur, upsample_bilinear};

#[test]
fn upsample_matches_reference() {
    let cases = load("upsample.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 10);
    for (n, c) in cases.iter().enumerate() {
        let x = arr2(&c["input"]);
        let exp = arr2(&c["expected"]);
        let got = upsample_bilinear(x.view(), u(&c["out_h"]), u(&c["out_w"])).unwrap();
        assert_close2(
            &got,
            &exp,
            1e-9,
            &format!("upsample case {n} {:?}", x.dim()),
        );
    }
}

/// The example printed in PyTorch's `nn.Upsample` documentation
/// (`mode='bilinear'`, `align_corners=False`, 2x2 -> 4x4).
#[test]
fn upsample_matches_pytorch_docs_example() {
    let x = array![[1.0, 2.0], [3.0, 4.0]];
    let exp = array![
        [1.0, 1.25, 1.75, 2.0],
        [1.5, 1.75, 2.25, 2.5],
        [2.5, 2.75, 3.25, 3.5],
        [3.0, 3.25, 3.75, 4.0]
    ];
    let got = upsample_bilinear(x.view(), 4, 4).unwrap();
    assert_close2(&got, &exp, 1e-12, "pytorch docs example");
}

#[test]
fn blur_matches_scipy() {
    let cases = load("blur.json");
    for (n, c) in cases.as_array().unwrap().iter().enumerate() {
        let x = arr2(&c["input"]);
        let exp = arr2(&c["expected"]);
        let got = gaussian_blur(x.view(), f(&c["sigma"])).unwrap();
        assert_close2(
            &got,
            &exp,
            1e-9,
            &format!("blur case {n} sigma {}", c["sigma"]),
        );
    }
}

#[test]
fn combine_matches_reference() {
    let c = load("combine.json");
    let maps: Vec<_> = c["maps"].as_array().unwrap().iter().map(arr2).collect();
    let got = combine_levels(&maps, u(&c["out_h"]), u(&c["out_w"])).unwrap();
    assert_close2(&got, &arr2(&c["expected"]), 1e-9, "combine");
}

#[test]
fn resample_bad_input_is_a_typed_error() {
    let x = array![[1.0, 2.0], [3.0, 4.0]];
    assert!(matches!(
        upsample_bilinear(x.view(), 0, 3),
        Err(ScoringError::ZeroOutputSize { .. })
    ));
    assert!(matches!(
        upsample_bilinear(x.view(), 3, 0),
        Err(ScoringError::ZeroOutputSize { .. })
    ));
    let empty = ndarray::Array2::<f64>::zeros((0, 3));
    assert!(matches!(
        upsample_bilinear(empty.view(), 3, 3),
        Err(ScoringError::EmptyInput { .. })
    ));
    let nan = array![[1.0, f64::NAN]];
    assert!(matches!(
        upsample_bilinear(nan.view(), 3, 3),
        Err(ScoringError::NonFinite { .. })
    ));
    assert!(matches!(
        gaussian_blur(nan.view(), 1.0),
        Err(ScoringError::NonFinite { .. })
    ));
    for s in [-1.0, f64::NAN, f64::INFINITY, 1e12] {
        assert!(
            matches!(
                gaussian_blur(x.view(), s),
                Err(ScoringError::InvalidSigma { .. })
            ),
            "sigma {s}"
        );
    }
    assert!(matches!(
        combine_levels(&[], 4, 4),
        Err(ScoringError::EmptyInput { .. })
    ));
    assert!(matches!(
        combine_levels(std::slice::from_ref(&x), 0, 4),
        Err(ScoringError::ZeroOutputSize { .. })
    ));
    // error messages name the problem
    let msg = upsample_bilinear(x.view(), 0, 3).unwrap_err().to_string();
    assert!(msg.contains("0x3"), "{msg}");
}
