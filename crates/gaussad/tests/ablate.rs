//! `gaussad ablate` end to end on a copy of two categories of the embedded dev set with
//! EfficientNet-Lite0 (embedded weights): resume, sharding + merge, grid errors.
//! Run with `--release` (the backbone runs here).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gaussad::ablate::grid::Grid;
use gaussad::ablate::store::{CellResult, read_all_cells};
use gaussad::ablate::{AblateOptions, MergeOptions, RunSummary, merge, run_ablation};
use gaussad::config::MethodFlags;
use gaussad::eval::{EvalOptions, run_eval};
use gaussad::progress::Progress;

const CATEGORIES: [&str; 2] = ["brick", "parts"];

/// Three OPCA/none reductions at the default levels (a figure-5 sweep) and two single levels
/// (a table-5-like sweep): 5 configs x 2 categories = 10 cells, 2 groups.
const GRID: &str = r#"
[method]
backbone = "efficientnet-lite0"

[[sweep]]
name = "variance"
reductions = ["opca:0.05", "opca:0.2", "none"]

[[sweep]]
name = "levels"
levels = [[4], [5]]
"#;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A copy of two dev categories and the grid file, in a temporary folder.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dev = gaussad::cli::embedded_dataset();
    for c in CATEGORIES {
        copy_dir(&dev.join(c), &data.join(c));
    }
    let grid = tmp.path().join("grid.toml");
    std::fs::write(&grid, GRID).unwrap();
    (tmp, data, grid)
}

fn opts(data: &Path, grid: &Path, out: &Path) -> AblateOptions {
    AblateOptions { grid: Some(grid.to_path_buf()), ..AblateOptions::new(data, out) }
}

fn run(o: &AblateOptions) -> RunSummary {
    run_ablation(o, &Progress::new(true)).unwrap()
}

/// Cell results by id (ids are stable: same config, data and weights).
fn cells(dir: &Path) -> BTreeMap<String, CellResult> {
    read_all_cells(dir).unwrap().into_iter().map(|c| (c.id.clone(), c)).collect()
}

fn mtimes(dir: &Path) -> BTreeMap<String, std::time::SystemTime> {
    std::fs::read_dir(dir.join("cells"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().modified().unwrap())
        })
        .collect()
}

/// The metric columns of ablation.json (times excluded), per config and category.
fn json_metrics(dir: &Path) -> Vec<(String, String, [f64; 5])> {
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("ablation.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for cfg in doc["configs"].as_array().unwrap() {
        let key = cfg["config"].to_string();
        for (cat, r) in cfg["categories"].as_object().unwrap() {
            let m = ["image_auroc", "pixel_auroc", "aupro", "image_f1_max", "pixel_f1_max"].map(|k| r[k].as_f64().unwrap());
            out.push((key.clone(), cat.clone(), m));
        }
    }
    out
}

#[test]
fn grid_runs_resumes_and_shards_merge_to_the_unsharded_result() {
    let (tmp, data, grid) = setup();
    let full = tmp.path().join("full");

    // 1. The whole grid: every cell computed, features extracted once per group.
    let s = run(&opts(&data, &grid, &full));
    assert_eq!((s.grid_cells, s.skipped, s.computed.len(), s.groups_extracted, s.missing), (10, 0, 10, 2, 0));
    for f in ["ablation.json", "ablation.csv", "ablation.md", "grid.json", "plots/variance1.png", "plots/levels1.png"] {
        assert!(full.join(f).is_file(), "{f} missing");
    }
    for c in CATEGORIES {
        assert!(full.join(format!("plots/variance1_{c}.png")).is_file());
    }
    let md = std::fs::read_to_string(full.join("ablation.md")).unwrap();
    assert!(md.contains("## Variance threshold (figure 5)") && md.contains("## Single levels (paper table 5"), "{md}");
    assert!(md.contains("## Running time (table 3)"));
    assert!(!full.join("cache").join("group1-brick").exists(), "no spill below the budget");
    let first = cells(&full);
    assert_eq!(first.len(), 10);
    for c in first.values() {
        for m in c.metrics() {
            assert!(m.is_finite() && (0.0..=1.0).contains(&m), "{c:?}");
        }
        assert!(c.fit_seconds > 0.0 && c.test_seconds > 0.0);
        assert_eq!(c.group_levels, vec![3, 4, 5, 6, 7]);
    }
    // The CSV has one row per cell and one mean row per config.
    let csv = std::fs::read_to_string(full.join("ablation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 10 + 5);

    // The default-method cell equals what `gaussad eval` computes for that config (the
    // ablation fits from the shared feature cache instead of streaming from the backbone).
    let eval_out = tmp.path().join("eval");
    let eval_opts = EvalOptions {
        dataset: data.clone(),
        categories: vec!["brick".into()],
        out: eval_out.clone(),
        panels: 0,
        save_models: false,
    };
    run_eval(&eval_opts, &MethodFlags::default().check().unwrap(), Progress::new(true)).unwrap();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval_out.join("results.json")).unwrap()).unwrap();
    let brick = &results["categories"]["brick"];
    let cell = first
        .values()
        .find(|c| c.category == "brick" && c.config.text("reduction").unwrap() == "opca:0.05" && c.config.levels.as_slice() == [3, 4, 5, 6, 7])
        .unwrap();
    for (key, v) in ["image_auroc", "pixel_auroc", "aupro", "image_f1_max", "pixel_f1_max"].iter().zip(cell.metrics()) {
        assert_eq!(brick[key].as_f64().unwrap(), v, "{key}");
    }

    // 2. A re-run computes nothing and leaves every cell file alone.
    let before = mtimes(&full);
    let s = run(&opts(&data, &grid, &full));
    assert_eq!((s.skipped, s.computed.len(), s.groups_extracted), (10, 0, 0));
    assert_eq!(mtimes(&full), before);

    // 3. A deleted cell file: only that cell is recomputed (to the same metrics).
    let victim = first.keys().nth(3).unwrap().clone();
    std::fs::remove_file(full.join("cells").join(format!("{victim}.json"))).unwrap();
    let s = run(&opts(&data, &grid, &full));
    assert_eq!(s.computed, vec![victim.clone()]);
    assert_eq!((s.skipped, s.groups_extracted), (9, 1));
    assert_eq!(cells(&full)[&victim].metrics(), first[&victim].metrics());

    // 4. Shards 1/2 and 2/2 split the cells (whole groups); merged, they equal the unsharded run.
    let (a, b, merged) = (tmp.path().join("s1"), tmp.path().join("s2"), tmp.path().join("merged"));
    let s1 = run(&AblateOptions { shard: Some("1/2".parse().unwrap()), ..opts(&data, &grid, &a) });
    let s2 = run(&AblateOptions { shard: Some("2/2".parse().unwrap()), ..opts(&data, &grid, &b) });
    assert_eq!((s1.computed.len(), s2.computed.len(), s1.groups_extracted, s2.groups_extracted), (5, 5, 1, 1));
    assert_eq!((s1.missing, s2.missing), (5, 5));

    // A single shard is not the whole grid: merge refuses and lists what is missing.
    let err = merge(&MergeOptions { out: merged.clone(), shards: vec![a.clone()], allow_partial: false }, &Progress::new(true))
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("5 of 10 cells") && msg.contains("--allow-partial"), "{msg}");
    assert_eq!(
        merge(&MergeOptions { out: tmp.path().join("partial"), shards: vec![a.clone()], allow_partial: true }, &Progress::new(true))
            .unwrap(),
        5
    );

    let n = merge(&MergeOptions { out: merged.clone(), shards: vec![a, b], allow_partial: false }, &Progress::new(true)).unwrap();
    assert_eq!(n, 10);
    let m = cells(&merged);
    assert_eq!(m.keys().collect::<Vec<_>>(), first.keys().collect::<Vec<_>>());
    for (id, c) in &m {
        assert_eq!(c.metrics(), first[id].metrics(), "cell {id}");
    }
    assert_eq!(json_metrics(&merged), json_metrics(&full));
    let csv_metrics = |dir: &Path| -> Vec<String> {
        // Config and metric columns of the CSV, time columns dropped.
        std::fs::read_to_string(dir.join("ablation.csv"))
            .unwrap()
            .lines()
            .map(|l| l.split(',').take(18).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(csv_metrics(&merged), csv_metrics(&full));

    // 5. A folder of another grid cannot be merged in.
    let other_grid = tmp.path().join("other.toml");
    std::fs::write(&other_grid, "categories = [\"brick\"]\nlevels = [[4]]\n").unwrap();
    let other = tmp.path().join("other");
    // Over the cache budget (0 bytes here), the features are spilled to OUT/cache and read back:
    // same metrics as in memory, and the spill files are gone after the group.
    let s = run(&AblateOptions { cache_bytes: 0, ..opts(&data, &other_grid, &other) });
    assert_eq!(s.computed.len(), 1);
    let spilled = cells(&other);
    let c = spilled.values().next().unwrap();
    assert!(c.group_cache_on_disk);
    let left: Vec<_> = walk(&other.join("cache"));
    assert!(left.is_empty(), "spill files left: {left:?}");
    let in_memory = tmp.path().join("other-mem");
    run(&opts(&data, &other_grid, &in_memory));
    let m = cells(&in_memory);
    assert!(!m[&c.id].group_cache_on_disk);
    assert_eq!(m[&c.id].metrics(), c.metrics());
    let err = merge(&MergeOptions { out: tmp.path().join("bad"), shards: vec![merged, other], allow_partial: true }, &Progress::new(true))
        .unwrap_err();
    assert!(format!("{err:#}").contains("another grid"), "{err:#}");
}

/// Files (not folders) under `dir`, recursively; none if it does not exist.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

fn gaussad(args: &[&str], envs: &[(&str, &Path)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gaussad"));
    cmd.arg("--quiet").args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn grid_errors_name_the_file_and_the_key_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = gaussad::cli::embedded_dataset();
    let cases = [
        ("unknown.toml", "reductoins = [\"none\"]\n", "reductoins"),
        ("reduction.toml", "reductions = [\"opca:0.05\", \"opca:1.5\"]\n", "reductions"),
        ("level.toml", "levels = [[3, 12]]\n", "levels"),
        ("empty.toml", "[[sweep]]\nspatial = []\n", "spatial"),
        ("category.toml", "categories = [\"nope\"]\n", "nope"),
    ];
    for (name, text, key) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = tmp.path().join(format!("out-{name}"));
        let (ok, err) = gaussad(
            &["ablate", "--dataset", dev.to_str().unwrap(), "--config", path.to_str().unwrap(), "--out", out.to_str().unwrap()],
            &[],
        );
        assert!(!ok, "{name} was accepted");
        assert!(err.contains(name) && err.contains(key), "{name}: {err}");
        assert!(!out.exists(), "{name}: work started before the error");
    }
    // Missing weights: the message names the download command, before anything is written.
    let grid = tmp.path().join("resnet.toml");
    std::fs::write(&grid, "backbones = [\"efficientnet-lite0\", \"resnet18\"]\n").unwrap();
    let out = tmp.path().join("out-resnet");
    let (ok, err) = gaussad(
        &["ablate", "--dataset", dev.to_str().unwrap(), "--config", grid.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &[("GAUSSAD_WEIGHTS_DIR", tmp.path())],
    );
    assert!(!ok);
    assert!(err.contains("cargo xtask download weights --backbone resnet18"), "{err}");
    assert!(!out.exists());
}

#[test]
fn the_committed_grid_files_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/ablations");
    assert_eq!(Grid::load(&root.join("paper.toml")).unwrap(), Grid::paper().unwrap());
    let dev = Grid::load(&root.join("dev-small.toml")).unwrap();
    assert_eq!(dev.categories, vec!["brick", "parts"]);
}
