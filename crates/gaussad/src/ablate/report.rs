//! Tables and plots of an ablation: `ablation.{json,csv,md}` and `plots/*.png`.
//!
//! - every cell (config x category) with its metrics and times,
//! - per config: the mean over its categories,
//! - figure-5-like plots (metric vs OPCA variance threshold) for every set of configs that
//!   differ only in the reduction and hold at least two `opca:T` values,
//! - table-5-like per-level tables and a plot (metric vs level) for every set of configs
//!   that differ only in a single tapped level,
//! - table-3-like times: per cell, model fit and test seconds (from cached features), the
//!   group's backbone seconds, and a least-squares line fit_seconds = a + b * n_train.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use mvtec_eval::{Curve, PlotSpec, plot_curves, write_atomic};
use opca_reduction::Selection;
use serde_json::json;

use crate::config::MethodConfig;
use super::store::{CellResult, GridRecord};

const METRICS: [(&str, &str); 3] = [("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("aupro", "AUPRO")];

fn metric(c: &CellResult, name: &str) -> f64 {
    match name {
        "image_auroc" => c.image_auroc,
        "pixel_auroc" => c.pixel_auroc,
        "aupro" => c.aupro,
        _ => f64::NAN,
    }
}

/// Columns of a config, as (name, text): every method option.
fn config_columns(c: &MethodConfig) -> Vec<(&'static str, String)> {
    c.columns()
}

/// A config named by its non-default options except `skip` (e.g. the swept one).
fn context_of(c: &MethodConfig, skip: &str) -> String {
    let default = MethodConfig::default().columns();
    let parts: Vec<String> = c
        .columns()
        .into_iter()
        .zip(default)
        .filter(|((n, v), (_, d))| *n != skip && (v != d || *n == "backbone"))
        .map(|((n, v), _)| format!("{n} {v}"))
        .collect();
    parts.join(", ")
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// The same config with one column blanked (the key of a one-factor sweep).
fn key_without(c: &MethodConfig, column: &str) -> String {
    config_columns(c).into_iter().filter(|(n, _)| *n != column).map(|(_, v)| v).collect::<Vec<_>>().join("|")
}

/// A short label naming only the columns that vary across `configs`.
fn labeler(configs: &[&MethodConfig]) -> impl Fn(&MethodConfig) -> String {
    let mut varying: Vec<&'static str> = Vec::new();
    if let Some(first) = configs.first() {
        let f = config_columns(first);
        for c in configs {
            for ((n, a), (_, b)) in f.iter().zip(config_columns(c)) {
                if *a != b && !varying.contains(n) {
                    varying.push(n);
                }
            }
        }
    }
    move |c: &MethodConfig| {
        let parts: Vec<String> = config_columns(c)
            .into_iter()
            .filter(|(n, _)| varying.contains(n))
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        if parts.is_empty() { c.backbone.clone() } else { parts.join(" ") }
    }
}

struct ConfigSummary<'a> {
    config: &'a MethodConfig,
    sweeps: Vec<String>,
    cells: Vec<&'a CellResult>,
    n_categories: usize,
}

impl ConfigSummary<'_> {
    fn mean(&self, name: &str) -> Option<f64> {
        (!self.cells.is_empty()).then(|| self.cells.iter().map(|c| metric(c, name)).sum::<f64>() / self.cells.len() as f64)
    }
    fn get(&self, category: &str) -> Option<&CellResult> {
        self.cells.iter().copied().find(|c| c.category == category)
    }
}

/// Least squares y = a + b x; None with fewer than two distinct x.
pub fn line_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

fn f(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

/// Writes `ablation.json`, `ablation.csv`, `ablation.md` and `plots/` under `out`.
pub fn write_reports(out: &Path, record: &GridRecord, cells: &[(usize, CellResult)]) -> Result<()> {
    let categories: Vec<&String> = record.categories.keys().collect();
    let summaries: Vec<ConfigSummary<'_>> = record
        .configs
        .iter()
        .enumerate()
        .map(|(i, c)| ConfigSummary {
            config: &c.config,
            sweeps: c.sweeps.clone(),
            cells: cells.iter().filter(|(ci, _)| *ci == i).map(|(_, r)| r).collect(),
            n_categories: record.cells.iter().filter(|(ci, _)| *ci == i).count(),
        })
        .collect();
    let all: Vec<&MethodConfig> = summaries.iter().map(|s| s.config).collect();
    let label = labeler(&all);
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("cannot create {}", plots.display()))?;

    // ---- CSV: one row per cell, then one mean row per config.
    let mut csv = String::from("config,sweeps,");
    let names: Vec<&str> = config_columns(&MethodConfig::default()).into_iter().map(|(n, _)| n).collect();
    csv.push_str(&names.join(","));
    csv.push_str(",category,image_auroc,pixel_auroc,aupro,image_f1_max,pixel_f1_max,fit_seconds,test_seconds,group_extract_train_seconds,group_extract_test_seconds,n_train,n_test,id\n");
    for (i, s) in summaries.iter().enumerate() {
        let cfg: Vec<String> = config_columns(s.config).into_iter().map(|(_, v)| csv_field(&v)).collect();
        for c in &s.cells {
            let _ = writeln!(
                csv,
                "{},{},{},{},{:.9},{:.9},{:.9},{:.9},{:.9},{:.6},{:.6},{:.6},{:.6},{},{},{}",
                i + 1,
                s.sweeps.join(" "),
                cfg.join(","),
                c.category,
                c.image_auroc,
                c.pixel_auroc,
                c.aupro,
                c.image_f1_max,
                c.pixel_f1_max,
                c.fit_seconds,
                c.test_seconds,
                c.group_extract_train_seconds,
                c.group_extract_test_seconds,
                c.n_train,
                c.n_test,
                c.id
            );
        }
    }
    for (i, s) in summaries.iter().enumerate() {
        let cfg: Vec<String> = config_columns(s.config).into_iter().map(|(_, v)| csv_field(&v)).collect();
        let m = |n| s.mean(n).map_or(String::new(), |v| format!("{v:.9}"));
        let _ = writeln!(
            csv,
            "{},{},{},mean,{},{},{},,,,,,,,,",
            i + 1,
            s.sweeps.join(" "),
            cfg.join(","),
            m("image_auroc"),
            m("pixel_auroc"),
            m("aupro")
        );
    }
    write_atomic(out.join("ablation.csv"), csv.as_bytes())?;

    // ---- Markdown.
    let mut md = String::new();
    let done = cells.len();
    let _ = writeln!(md, "# Ablation\n");
    let _ = writeln!(
        md,
        "Grid {} ({}): {} configs x {} categories = {} cells, {} with results{}.\n",
        &record.grid_hash.chars().take(12).collect::<String>(),
        record.source,
        record.configs.len(),
        categories.len(),
        record.cells.len(),
        done,
        if done < record.cells.len() { " (INCOMPLETE: means are over the categories done)" } else { "" }
    );
    let _ = writeln!(md, "Metrics are fractions; means are over categories.\n");
    let _ = writeln!(md, "## All configurations (mean over categories)\n");
    let _ = writeln!(md, "| # | configuration | sweeps | image AUROC | pixel AUROC | AUPRO | categories |");
    let _ = writeln!(md, "|---:|---|---|---:|---:|---:|---:|");
    for (i, s) in summaries.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {}/{} |",
            i + 1,
            label(s.config),
            s.sweeps.join(", "),
            f(s.mean("image_auroc")),
            f(s.mean("pixel_auroc")),
            f(s.mean("aupro")),
            s.cells.len(),
            s.n_categories
        );
    }
    md.push('\n');
    for (key, title) in METRICS {
        let _ = writeln!(md, "### {title} per category\n");
        let _ = write!(md, "| # | configuration |");
        for c in &categories {
            let _ = write!(md, " {c} |");
        }
        let _ = writeln!(md, " mean |");
        let _ = writeln!(md, "|---:|---|{}---:|", "---:|".repeat(categories.len()));
        for (i, s) in summaries.iter().enumerate() {
            let _ = write!(md, "| {} | {} |", i + 1, label(s.config));
            for c in &categories {
                let _ = write!(md, " {} |", f(s.get(c).map(|r| metric(r, key))));
            }
            let _ = writeln!(md, " {} |", f(s.mean(key)));
        }
        md.push('\n');
    }

    // ---- Figure 5: metric vs OPCA variance threshold.
    let mut json_variance = Vec::new();
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (i, s) in summaries.iter().enumerate() {
        let k = key_without(s.config, "reduction");
        if !by_key.contains_key(&k) {
            order.push(k.clone());
        }
        by_key.entry(k).or_default().push(i);
    }
    let mut n_fig = 0;
    for k in &order {
        let Some(members) = by_key.get(k) else { continue };
        let mut opca: Vec<(f64, usize)> = members
            .iter()
            .filter_map(|&i| match summaries.get(i)?.config.reduction {
                Selection::Opca(t) => Some((t, i)),
                _ => None,
            })
            .collect();
        if opca.len() < 2 {
            continue;
        }
        opca.sort_by(|a, b| a.0.total_cmp(&b.0));
        n_fig += 1;
        let Some(base) = members.first().and_then(|&i| summaries.get(i)) else { continue };
        let context = context_of(base.config, "reduction");
        if n_fig == 1 {
            let _ = writeln!(md, "## Variance threshold (figure 5)\n");
        }
        let _ = writeln!(md, "### {context} (plots/variance{n_fig}*.png)\n");
        let _ = writeln!(md, "| reduction | image AUROC | pixel AUROC | AUPRO | kept as x |");
        let _ = writeln!(md, "|---|---:|---:|---:|---|");
        for &i in members {
            let Some(s) = summaries.get(i) else { continue };
            let on_plot = opca.iter().any(|&(_, j)| j == i);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                s.config.reduction,
                f(s.mean("image_auroc")),
                f(s.mean("pixel_auroc")),
                f(s.mean("aupro")),
                if on_plot { "yes" } else { "table only" }
            );
        }
        md.push('\n');
        // x in percent, the axis end rounded up to a multiple of 10 so that the plot's ten
        // ticks fall on round numbers.
        let x_max = (opca.iter().map(|p| p.0 * 100.0).fold(0.0f64, f64::max) / 10.0).ceil().max(1.0) * 10.0;
        let mut scopes: Vec<Option<&String>> = vec![None];
        scopes.extend(categories.iter().copied().map(Some));
        for scope in scopes {
            let curves: Vec<(&str, Curve)> = METRICS
                .iter()
                .map(|(key, title)| {
                    let mut c = Curve::default();
                    for &(t, i) in &opca {
                        let v = summaries.get(i).and_then(|s| match scope {
                            None => s.mean(key),
                            Some(cat) => s.get(cat).map(|r| metric(r, key)),
                        });
                        if let Some(v) = v {
                            c.x.push(100.0 * t);
                            c.y.push(v);
                        }
                    }
                    (*title, c)
                })
                .collect();
            if curves.iter().all(|(_, c)| c.is_empty()) {
                continue;
            }
            let (name, who) = match scope {
                None => (format!("variance{n_fig}.png"), "mean".to_string()),
                Some(cat) => (format!("variance{n_fig}_{cat}.png"), cat.clone()),
            };
            let spec = PlotSpec {
                title: format!("{who}: {context}"),
                x_label: "OPCA variance threshold t (% of the variance kept)".into(),
                y_label: "metric".into(),
                x_range: (0.0, x_max),
                x_marker: None,
                size: (640, 480),
            };
            let series: Vec<(&str, &Curve)> = curves.iter().map(|(n, c)| (*n, c)).collect();
            plot_curves(plots.join(&name), &spec, &series)?;
        }
        json_variance.push(json!({
            "context": context,
            "configs": members.iter().map(|i| i + 1).collect::<Vec<_>>(),
            "plot": format!("plots/variance{n_fig}.png"),
        }));
    }

    // ---- Tables 4-5: single levels.
    let mut json_levels = Vec::new();
    let mut by_key: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (i, s) in summaries.iter().enumerate() {
        if let [level] = s.config.levels.as_slice() {
            let k = key_without(s.config, "levels");
            if !by_key.contains_key(&k) {
                order.push(k.clone());
            }
            by_key.entry(k).or_default().push((*level, i));
        }
    }
    let mut n_lv = 0;
    for k in &order {
        let Some(members) = by_key.get_mut(k) else { continue };
        if members.len() < 2 {
            continue;
        }
        members.sort_unstable();
        n_lv += 1;
        let Some(base) = members.first().and_then(|&(_, i)| summaries.get(i)) else { continue };
        let context = context_of(base.config, "levels");
        if n_lv == 1 {
            let _ = writeln!(md, "## Single levels (paper table 5 for EfficientNet-B4)\n");
        }
        let _ = writeln!(md, "### {context} (plots/levels{n_lv}.png)\n");
        for (key, title) in METRICS {
            let _ = writeln!(md, "{title}:\n");
            let _ = write!(md, "| level |");
            for c in &categories {
                let _ = write!(md, " {c} |");
            }
            let _ = writeln!(md, " mean |");
            let _ = writeln!(md, "|---:|{}---:|", "---:|".repeat(categories.len()));
            for &(level, i) in members.iter() {
                let Some(s) = summaries.get(i) else { continue };
                let _ = write!(md, "| {level} |");
                for c in &categories {
                    let _ = write!(md, " {} |", f(s.get(c).map(|r| metric(r, key))));
                }
                let _ = writeln!(md, " {} |", f(s.mean(key)));
            }
            md.push('\n');
        }
        let lo = members.first().map_or(0, |m| m.0) as f64;
        let hi = members.last().map_or(0, |m| m.0) as f64;
        // Axis from 0 to a multiple of 10, so the ten ticks are whole levels.
        let axis_end = ((hi + 1.0) / 10.0).ceil().max(1.0) * 10.0;
        let curves: Vec<(&str, Curve)> = METRICS
            .iter()
            .map(|(key, title)| {
                let mut c = Curve::default();
                for &(level, i) in members.iter() {
                    if let Some(v) = summaries.get(i).and_then(|s| s.mean(key)) {
                        c.x.push(level as f64);
                        c.y.push(v);
                    }
                }
                (*title, c)
            })
            .collect();
        if hi > lo && curves.iter().any(|(_, c)| !c.is_empty()) {
            let spec = PlotSpec {
                title: format!("mean: {context}"),
                x_label: "level".into(),
                y_label: "metric".into(),
                x_range: (0.0, axis_end),
                x_marker: None,
                size: (640, 480),
            };
            let series: Vec<(&str, &Curve)> = curves.iter().map(|(n, c)| (*n, c)).collect();
            plot_curves(plots.join(format!("levels{n_lv}.png")), &spec, &series)?;
        }
        json_levels.push(json!({
            "context": context,
            "levels": members.iter().map(|m| json!({"level": m.0, "config": m.1 + 1})).collect::<Vec<_>>(),
            "plot": format!("plots/levels{n_lv}.png"),
        }));
    }

    // ---- Table 3: times.
    let _ = writeln!(md, "## Running time (table 3)\n");
    let _ = writeln!(
        md,
        "Seconds, wall clock on the machine that ran the cell. `fit` and `test` are the model alone \
         (fit from cached features; scoring the test set and computing the metrics), `backbone train` / \
         `backbone test` the feature extraction of the cell's group (shared by every cell of that \
         backbone, size and category, for all the levels the group needed).\n"
    );
    let _ = writeln!(md, "| # | configuration | category | train imgs | test imgs | fit s | test s | backbone train s | backbone test s | fit ms/img | test ms/img |");
    let _ = writeln!(md, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut json_time = Vec::new();
    for (i, s) in summaries.iter().enumerate() {
        for c in &s.cells {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} |",
                i + 1,
                label(s.config),
                c.category,
                c.n_train,
                c.n_test,
                c.fit_seconds,
                c.test_seconds,
                c.group_extract_train_seconds,
                c.group_extract_test_seconds,
                1000.0 * c.fit_seconds / c.n_train.max(1) as f64,
                1000.0 * c.test_seconds / c.n_test.max(1) as f64
            );
        }
        let pts: Vec<(f64, f64)> = s.cells.iter().map(|c| (c.n_train as f64, c.fit_seconds)).collect();
        json_time.push(json!({
            "config": i + 1,
            "fit_seconds_vs_n_train": line_fit(&pts).map(|(a, b)| json!({"intercept_seconds": a, "seconds_per_image": b})),
        }));
    }
    md.push('\n');
    let _ = writeln!(md, "Per-image fit cost: least-squares line fit_seconds = a + b * n_train over each configuration's categories:\n");
    let mut any_line = false;
    for (i, s) in summaries.iter().enumerate() {
        let pts: Vec<(f64, f64)> = s.cells.iter().map(|c| (c.n_train as f64, c.fit_seconds)).collect();
        if let Some((a, b)) = line_fit(&pts) {
            any_line = true;
            let _ = writeln!(md, "- #{} {}: a = {:.3} s, b = {:.2} ms per training image", i + 1, label(s.config), a, 1000.0 * b);
        }
    }
    if !any_line {
        let _ = writeln!(md, "- not estimable: every configuration's categories have the same number of training images (see the ms/img columns).");
    }
    md.push('\n');
    write_atomic(out.join("ablation.md"), md.as_bytes())?;

    // ---- JSON.
    let configs_json: Vec<_> = summaries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let per_cat: BTreeMap<&str, &CellResult> = s.cells.iter().map(|c| (c.category.as_str(), *c)).collect();
            json!({
                "index": i + 1,
                "label": label(s.config),
                "config": s.config,
                "sweeps": s.sweeps,
                "categories_done": s.cells.len(),
                "categories_total": s.n_categories,
                "mean": {
                    "image_auroc": s.mean("image_auroc"),
                    "pixel_auroc": s.mean("pixel_auroc"),
                    "aupro": s.mean("aupro"),
                },
                "categories": per_cat,
            })
        })
        .collect();
    let doc = json!({
        "grid_hash": record.grid_hash,
        "source": record.source,
        "cells_total": record.cells.len(),
        "cells_done": done,
        "configs": configs_json,
        "variance_sweeps": json_variance,
        "level_sweeps": json_levels,
        "timing": json_time,
    });
    write_atomic(out.join("ablation.json"), serde_json::to_string_pretty(&doc)?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_fit_recovers_a_line_and_refuses_a_single_x() {
        let (a, b) = line_fit(&[(10.0, 3.0), (20.0, 5.0), (30.0, 7.0)]).unwrap();
        assert!((a - 1.0).abs() < 1e-12 && (b - 0.2).abs() < 1e-12);
        assert!(line_fit(&[(10.0, 1.0), (10.0, 2.0)]).is_none());
    }
}
