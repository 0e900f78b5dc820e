//! The `pca-rank` option, added through the typed configuration alone: it is a flag, a TOML
//! key, a grid axis and a report column, and model files written before it existed still load
//! (with its default, `full`, which is what they were fitted with).

use std::path::{Path, PathBuf};
use std::process::Command;

use gaussad::ablate::grid::Grid;
use gaussad::config::{MethodConfig, MethodFlags};
use gaussad::model_file::Model;
use opca_reduction::PcaRank;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn gaussad(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gaussad")).arg("--quiet").args(args).output().unwrap()
}

#[test]
fn flag_toml_key_axis_and_column() {
    let help = String::from_utf8(gaussad(&["fit", "--help"]).stdout).unwrap();
    assert!(help.contains("--pca-rank <full|sample>"), "{help}");
    let bad = gaussad(&["fit", "--train", "x", "--out", "y", "--pca-rank", "half"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--pca-rank"), "{}", String::from_utf8_lossy(&bad.stderr));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.toml");
    std::fs::write(&file, "pca-rank = \"sample\"\n").unwrap();
    let cfg = MethodFlags { config: Some(file), ..Default::default() }.resolve().unwrap().config;
    assert_eq!(cfg.pca_rank, PcaRank::Sample);
    let checked = cfg.check().unwrap();
    assert_eq!(checked.detector.reduction.rank, PcaRank::Sample);

    let grid = Grid::from_toml_str("pca-rank = [\"full\", \"sample\"]").unwrap();
    let configs = grid.configs().unwrap();
    assert_eq!(configs.iter().map(|(_, c)| c.pca_rank).collect::<Vec<_>>(), vec![PcaRank::Full, PcaRank::Sample]);
    let columns = configs[1].1.columns();
    assert!(columns.contains(&("pca-rank", "sample".to_string())), "{columns:?}");
    assert_ne!(configs[0].1.method_key(), configs[1].1.method_key());
    // The default keeps the ids of configurations written before the option existed.
    assert_eq!(MethodConfig::default().method_key(), "{}");
}

#[test]
fn a_model_file_written_before_the_option_loads_with_its_default_and_scores_as_before() {
    let old = root().join("crates/gaussad/tests/fixtures/model-format2-before-pca-rank.gaussad");
    let model = Model::load(&old).unwrap();
    assert_eq!(model.header.config.pca_rank, PcaRank::Full);
    assert_eq!(model.detector.params().reduction.rank, PcaRank::Full);
    // A fresh fit with the same options and `--pca-rank full` gives the same scores.
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.gaussad");
    let train = root().join("datasets/dev/parts/train/good");
    let fit = gaussad(&[
        "fit", "--train", train.to_str().unwrap(), "--levels", "1,2", "--spatial", "shared", "--pca-rank", "full",
        "--out", new.to_str().unwrap(),
    ]);
    assert!(fit.status.success(), "{}", String::from_utf8_lossy(&fit.stderr));
    let image = root().join("datasets/dev/parts/test/missing/000.png");
    let score = |m: &Path, out: &str| -> f64 {
        let o = gaussad(&["predict", "--model", m.to_str().unwrap(), image.to_str().unwrap(), "--out", dir.path().join(out).to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let line: serde_json::Value = serde_json::from_str(String::from_utf8(o.stdout).unwrap().lines().next().unwrap()).unwrap();
        line["image_score"].as_f64().unwrap()
    };
    let (a, b) = (score(&old, "old"), score(&new, "new"));
    assert!((a - b).abs() <= 1e-9 * a.abs(), "old model {a}, refit {b}");
}
