//! Evaluates made-up anomaly maps (a blurred ground truth plus a fixed hash noise: no model)
//! on the development set and writes the report tables, ROC/PRO plots and heatmap panels, to
//! show the whole reporting path.
//!
//! `cargo run -p mvtec-eval --example dev_report -- OUT_DIR [DATASET_ROOT]`

use std::path::PathBuf;

use mvtec_eval::{
    Dataset, ImageMetrics, MaskGeometry, PanelOptions, PixelMetricsAccumulator, PlotSpec, Report, ValidateOptions,
    decode_image, heatmap_panel, load_sample_mask, plot_curves, write_png,
};
use ndarray::Array2;

fn noise(k: u32, i: u32, j: u32) -> f32 {
    let mut x = k.wrapping_mul(73856093) ^ i.wrapping_mul(19349663) ^ j.wrapping_mul(83492791);
    x ^= x >> 16;
    x = x.wrapping_mul(0x45D9F3B);
    x ^= x >> 16;
    (x % 1000) as f32 / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: dev_report OUT_DIR [DATASET_ROOT]")?);
    let root = args.next().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/dev"));
    std::fs::create_dir_all(&out)?;
    let ds = Dataset::open_mvtec(&root)?;
    let mut report = Report::new();
    let (mut rocs, mut pros) = (Vec::new(), Vec::new());
    let size = 64;
    for cat in ds.categories() {
        cat.validate(ValidateOptions { decode: false })?;
        let mut acc = PixelMetricsAccumulator::new();
        let (mut scores, mut labels, mut maps) = (Vec::new(), Vec::new(), Vec::new());
        for (k, s) in cat.test.iter().enumerate() {
            let mask = load_sample_mask(s, MaskGeometry::resize(size))?;
            let zero = Array2::from_elem((size, size), false);
            let m = mask.as_ref().unwrap_or(&zero);
            let map = Array2::from_shape_fn((size, size), |(i, j)| {
                let near = (i.saturating_sub(3)..(i + 4).min(size))
                    .flat_map(|y| (j.saturating_sub(3)..(j + 4).min(size)).map(move |x| (y, x)))
                    .filter(|&p| m[p])
                    .count() as f32;
                near / 49.0 + noise(k as u32, i as u32, j as u32)
            });
            acc.push(map.view(), mask.as_ref().map(|m| m.view()))?;
            scores.push(map.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64);
            labels.push(s.is_anomalous);
            if s.is_anomalous && maps.len() < 2 {
                maps.push((decode_image(&s.path)?, mask, map));
            }
        }
        let im = ImageMetrics::compute(&scores, &labels)?;
        let px = acc.finish()?;
        report.set_many(&cat.name, &[
            ("image_auroc", im.auroc),
            ("pixel_auroc", px.auroc),
            ("aupro", px.aupro),
            ("pixel_f1_max", px.f1_max),
            ("pixel_f1_threshold", px.f1_threshold),
        ]);
        for (i, (img, mask, map)) in maps.iter().enumerate() {
            let opts = PanelOptions { range: (0.0, 2.0), threshold: px.f1_threshold as f32, gap: 4 };
            let panel = heatmap_panel(img, mask.as_ref().map(|m| m.view()), map.view(), &opts)?;
            write_png(out.join(format!("panel_{}_{i}.png", cat.name)), &panel)?;
        }
        rocs.push((cat.name.clone(), px.roc));
        pros.push((cat.name.clone(), px.pro));
    }
    report.write_all(&out, "results")?;
    let r: Vec<(&str, &_)> = rocs.iter().map(|(n, c)| (n.as_str(), c)).collect();
    plot_curves(out.join("roc.png"), &PlotSpec::roc("pixel ROC (made-up maps)"), &r)?;
    let p: Vec<(&str, &_)> = pros.iter().map(|(n, c)| (n.as_str(), c)).collect();
    plot_curves(out.join("pro.png"), &PlotSpec::pro("PRO (made-up maps)", 0.3), &p)?;
    print!("{}", report.to_markdown());
    Ok(())
}
