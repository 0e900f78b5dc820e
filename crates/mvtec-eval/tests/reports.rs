//! Reports, atomic writes, plots and heatmap panels.

use image::{DynamicImage, RgbImage};
use mvtec_eval::{Curve, PanelOptions, PlotSpec, Report, heatmap_panel, jet, plot_curves, render_curves, write_atomic};
use ndarray::Array2;

fn sample_report() -> Report {
    let mut r = Report::new();
    r.set_many("bottle", &[("image_auroc", 1.0), ("pixel_auroc", 0.9)]);
    r.set_many("cable", &[("image_auroc", 0.5)]);
    r.set("cable", "fit_seconds", 2.5);
    r
}

#[test]
fn report_tables() {
    let r = sample_report();
    assert_eq!(r.columns, ["image_auroc", "pixel_auroc", "fit_seconds"]);
    assert_eq!(r.get("cable", "pixel_auroc"), None);
    assert_eq!(r.means(), vec![Some(0.75), Some(0.9), Some(2.5)]);
    assert_eq!(
        r.to_csv(),
        "category,image_auroc,pixel_auroc,fit_seconds\nbottle,1,0.9,\ncable,0.5,,2.5\nmean,0.75,0.9,2.5\n"
    );
    let md = r.to_markdown();
    assert!(md.starts_with("| category | image_auroc | pixel_auroc | fit_seconds |\n|---|---:|---:|---:|\n"));
    assert!(md.contains("| cable | 0.5000 | - | 2.5000 |"));
    assert!(md.contains("| **mean** | **0.7500** | **0.9000** | **2.5000** |"));
    let j: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(j["rows"][1]["values"]["pixel_auroc"], serde_json::Value::Null);
    assert_eq!(j["mean"]["image_auroc"], 0.75);
    let mut r2 = Report::new();
    r2.set("a,b", "x", f64::NAN);
    assert!(r2.to_csv().contains("\"a,b\",NaN"));
    assert!(r2.to_json().unwrap().contains("null"));
}

#[test]
fn atomic_writes_leave_no_temp_files() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("x.txt");
    write_atomic(&p, b"one").unwrap();
    write_atomic(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    let paths = sample_report().write_all(t.path(), "results").unwrap();
    for p in &paths {
        assert!(p.is_file());
    }
    let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let e = write_atomic(t.path().join("missing_dir/x.txt"), b"x").unwrap_err();
    assert!(e.to_string().contains("missing_dir"));
}

#[test]
fn curve_plot_renders_lines_and_text() {
    let c = Curve { x: vec![0.0, 0.1, 1.0], y: vec![0.0, 0.8, 1.0] };
    let spec = PlotSpec::roc("ROC curves");
    let img = render_curves(&spec, &[("bottle", &c)]).unwrap();
    assert_eq!(img.dimensions(), (640, 480));
    // Curve colour present.
    assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
    // The title row (top 30 px) holds anti-aliased glyph pixels, so the embedded font renders.
    let dark_in_title = (0..640).flat_map(|x| (0..30).map(move |y| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128).count();
    assert!(dark_in_title > 50, "{dark_in_title}");
    let empty_title = render_curves(&PlotSpec::roc(""), &[("bottle", &c)]).unwrap();
    assert_ne!(img, empty_title);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("pro.png");
    plot_curves(&p, &PlotSpec::pro("PRO", 0.3), &[("a", &c), ("b", &c)]).unwrap();
    assert_eq!(image::open(&p).unwrap().width(), 640);
}

#[test]
fn heatmap_panel_tiles() {
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 16, image::Rgb([100, 100, 100])));
    let map = Array2::from_shape_fn((8, 8), |(i, _)| i as f32);
    let mask = Array2::from_shape_fn((8, 8), |(i, j)| (2..5).contains(&i) && (2..5).contains(&j));
    let opts = PanelOptions { range: (0.0, 7.0), threshold: 6.0, gap: 2 };
    let p = heatmap_panel(&img, Some(mask.view()), map.view(), &opts).unwrap();
    assert_eq!(p.dimensions(), (4 * 8 + 3 * 2, 8));
    assert_eq!(p.get_pixel(0, 0).0, [100, 100, 100]);
    assert_eq!(p.get_pixel(10 + 3, 3).0, [255, 255, 255]); // GT inside
    assert_eq!(p.get_pixel(10, 3).0, [0, 0, 0]); // GT outside
    assert_eq!(*p.get_pixel(20, 0), jet(0.0));
    assert_eq!(*p.get_pixel(20, 7), jet(1.0));
    assert_eq!(p.get_pixel(30, 7).0, [177, 50, 50]); // above threshold: red tint
    assert_eq!(p.get_pixel(30 + 2, 2).0, [0, 255, 0]); // GT outline
    assert_eq!(p.get_pixel(30 + 3, 3).0, [100, 100, 100]); // GT interior, below threshold
    assert!(heatmap_panel(&img, Some(Array2::from_elem((4, 4), false).view()), map.view(), &opts).is_err());
    assert_eq!(jet(0.0).0, [0, 0, 128]);
    assert_eq!(jet(1.0).0, [128, 0, 0]);
    assert_eq!(jet(0.5).0, [128, 255, 128]);
}
