//! Parity with NumPy `eigh` / scikit-learn `PCA` (fixtures from `tests/fixtures/generate.py`).
//!
//! Eigenvector signs (and, inside a repeated eigenvalue, the basis) are arbitrary in any
//! solver, so subspaces are compared through the projector `W W^T` and projections through
//! their Gram matrix `Z Z^T`; components and projections themselves are compared column by
//! column up to sign only where the eigenvalues are distinct. Matrices are compared relative
//! to the reference's largest entry: `max |a - b| <= tol * max |b|`.

use ndarray::{Array1, Array2, Axis};
use opca_reduction::{PcaRank, ReductionParams, Selection};
use serde_json::Value;

const FIXTURES: &str = include_str!("fixtures/pca_fixtures.json");
const TOL: f64 = 1e-9;

fn cases() -> Vec<Value> {
    let doc: Value = serde_json::from_str(FIXTURES).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

fn vec1(v: &Value) -> Array1<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn mat(v: &Value) -> Array2<f64> {
    let rows = v.as_array().unwrap();
    let n = rows.len();
    let p = rows
        .first()
        .map(|r| r.as_array().unwrap().len())
        .unwrap_or(0);
    Array2::from_shape_fn((n, p), |(i, j)| rows[i][j].as_f64().unwrap())
}

fn assert_close<D: ndarray::Dimension>(
    got: &ndarray::Array<f64, D>,
    want: &ndarray::Array<f64, D>,
    tol: f64,
    what: &str,
) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let scale = want.iter().fold(0.0_f64, |m, v| m.max(v.abs())).max(1e-300);
    let err = got
        .iter()
        .zip(want.iter())
        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= tol * scale,
        "{what}: max abs diff {err:e} > {tol:e} * {scale:e}"
    );
}

#[test]
fn pca_and_selections_match_numpy() {
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let x = mat(&c["x"]);
        let x_test = mat(&c["x_test"]);
        let want_eig = vec1(&c["eigenvalues"]);
        for s in c["selections"].as_array().unwrap() {
            let sel_text = s["selection"].as_str().unwrap();
            let sel: Selection = sel_text.parse().unwrap();
            let what = format!("{name} {sel_text}");
            let fitted = ReductionParams::default()
                .with_selection(sel)
                .validate()
                .unwrap()
                .fit_rows(x.view())
                .unwrap();
            assert_close(
                fitted.mean(),
                &vec1(&c["mean"]),
                TOL,
                &format!("{what} mean"),
            );
            // eigenvalues: exact zeros must match exactly (same clamping rule), others 1e-9
            assert_close(
                fitted.eigenvalues(),
                &want_eig,
                TOL,
                &format!("{what} eigenvalues"),
            );
            for (a, b) in fitted.eigenvalues().iter().zip(want_eig.iter()) {
                assert_eq!(*a == 0.0, *b == 0.0, "{what}: zero pattern {a} vs {b}");
            }
            let (start, end) = (
                s["start"].as_u64().unwrap() as usize,
                s["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(fitted.kept_range(), start..end, "{what}: kept range");
            assert_eq!(fitted.output_dim(), end - start);
            let w = fitted.components();
            assert_close(
                &w.dot(&w.t()),
                &mat(&s["projector"]),
                TOL,
                &format!("{what} projector"),
            );
            let z = fitted.transform_rows(x_test.view()).unwrap();
            assert_close(
                &z.dot(&z.t()),
                &mat(&s["gram"]),
                TOL,
                &format!("{what} gram"),
            );
            if c["distinct"].as_bool().unwrap() {
                let wr = mat(&s["components"]);
                let zr = mat(&s["z"]);
                for j in 0..w.ncols() {
                    let sign = w.column(j).dot(&wr.column(j)).signum();
                    let wj = w.column(j).to_owned() * sign;
                    let zj = z.column(j).to_owned() * sign;
                    assert_close(&wj, &wr.column(j).to_owned(), TOL, &format!("{what} w{j}"));
                    assert_close(&zj, &zr.column(j).to_owned(), TOL, &format!("{what} z{j}"));
                }
            }
            // the three projection entry points agree
            for (i, row) in x_test.axis_iter(Axis(0)).enumerate() {
                let zv = fitted.transform_vector(row).unwrap();
                assert_close(&zv, &z.row(i).to_owned(), 1e-12, &format!("{what} vector"));
            }
        }
    }
}

#[test]
fn sign_convention_largest_entry_positive() {
    for c in cases() {
        let x = mat(&c["x"]);
        let f = ReductionParams::default()
            .with_selection(Selection::None)
            .validate()
            .unwrap()
            .fit_rows(x.view())
            .unwrap();
        for col in f.components().columns() {
            let (mut best, mut val) = (0.0_f64, 0.0);
            for &v in col {
                if v.abs() > best {
                    best = v.abs();
                    val = v;
                }
            }
            assert!(val > 0.0);
            assert!((col.dot(&col) - 1.0).abs() < 1e-12);
        }
    }
}

/// `pca-rank = sample` against scikit-learn's `PCA()` (fixtures from
/// `tests/fixtures/generate_rank.py`): the rule ranks only the sample-supported eigenpairs, so
/// with n <= d the null space never joins the kept OPCA tail.
#[test]
fn sample_rank_matches_sklearn() {
    let doc: Value = serde_json::from_str(include_str!("fixtures/pca_rank_fixtures.json")).unwrap();
    for c in doc["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let x = mat(&c["x"]);
        let x_test = mat(&c["x_test"]);
        let supported = c["supported"].as_u64().unwrap() as usize;
        for s in c["selections"].as_array().unwrap() {
            let sel_text = s["selection"].as_str().unwrap();
            let what = format!("{name} {sel_text} sample");
            let fitted = ReductionParams::default()
                .with_selection(sel_text.parse().unwrap())
                .with_rank(PcaRank::Sample)
                .validate()
                .unwrap()
                .fit_rows(x.view())
                .unwrap();
            let (start, end) = (s["start"].as_u64().unwrap() as usize, s["end"].as_u64().unwrap() as usize);
            assert_eq!(fitted.kept_range(), start..end, "{what}: kept range");
            assert!(end <= supported, "{what}: a null direction was kept");
            assert_close(
                &fitted.eigenvalues().slice(ndarray::s![..supported]).to_owned(),
                &vec1(&c["eigenvalues_supported"]),
                TOL,
                &format!("{what} eigenvalues"),
            );
            let w = fitted.components();
            assert_close(&w.dot(&w.t()), &mat(&s["projector"]), TOL, &format!("{what} projector"));
            let z = fitted.transform_rows(x_test.view()).unwrap();
            assert_close(&z.dot(&z.t()), &mat(&s["gram"]), TOL, &format!("{what} gram"));
        }
    }
}
