//! PNG pictures: ROC and PRO curve plots (plotters, bitmap backend, lines only; all text is
//! rasterised by this module with `ab_glyph` from the DejaVu Sans font embedded in the crate, so
//! no system font is needed) and heatmap panels (image | ground truth | anomaly map |
//! thresholded overlay).
//!
//! plotters' own `ab_glyph` feature is deliberately NOT used: enabling it workspace-wide makes
//! criterion's plots fail (`FontUnavailable`), since criterion does not register a font.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use ndarray::ArrayView2;
use plotters::prelude::*;

use crate::error::{EvalError, Result};
use crate::metrics::Curve;
use crate::report::write_atomic;

/// DejaVu Sans (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn font() -> std::result::Result<&'static FontRef<'static>, String> {
    static FONT: OnceLock<std::result::Result<FontRef<'static>, String>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).map_err(|e| format!("embedded font: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// Renders `text` at `size` px into a coverage image (0 = empty, 255 = ink).
fn text_coverage(font: &FontRef<'static>, text: &str, size: f32) -> GrayImage {
    let scale = PxScale::from(size);
    let sf = font.as_scaled(scale);
    let mut caret = 0.0f32;
    let mut glyphs = Vec::new();
    let mut prev = None;
    for ch in text.chars() {
        let id = sf.glyph_id(ch);
        if let Some(p) = prev {
            caret += sf.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(caret, sf.ascent())));
        caret += sf.h_advance(id);
        prev = Some(id);
    }
    let w = caret.ceil().max(1.0) as u32 + 1;
    let h = (sf.ascent() - sf.descent()).ceil().max(1.0) as u32 + 1;
    let mut img = GrayImage::new(w, h);
    for g in glyphs {
        if let Some(og) = font.outline_glyph(g) {
            let b = og.px_bounds();
            og.draw(|x, y, c| {
                let (px, py) = (b.min.x as i64 + x as i64, b.min.y as i64 + y as i64);
                if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                    let v = (c.clamp(0.0, 1.0) * 255.0).round() as u8;
                    let old = img.get_pixel(px as u32, py as u32).0[0];
                    img.put_pixel(px as u32, py as u32, Luma([old.max(v)]));
                }
            });
        }
    }
    img
}

/// Blends a coverage image into `dst` with its top-left at (x, y), optionally rotated 90 degrees
/// counter-clockwise (for a y-axis label).
fn blit(dst: &mut RgbImage, cov: &GrayImage, x: i64, y: i64, color: [u8; 3], rotate: bool) {
    let (cw, ch) = cov.dimensions();
    for cy in 0..ch {
        for cx in 0..cw {
            let a = cov.get_pixel(cx, cy).0[0] as u32;
            if a == 0 {
                continue;
            }
            let (dx, dy) = if rotate { (x + cy as i64, y + (cw - 1 - cx) as i64) } else { (x + cx as i64, y + cy as i64) };
            if dx < 0 || dy < 0 || dx >= dst.width() as i64 || dy >= dst.height() as i64 {
                continue;
            }
            let p = dst.get_pixel_mut(dx as u32, dy as u32);
            for (k, c) in color.iter().enumerate() {
                p.0[k] = ((p.0[k] as u32 * (255 - a) + *c as u32 * a) / 255) as u8;
            }
        }
    }
}

/// Draws `text` so that the point (x, y) is at the fraction (ax, ay) of its box (0.5, 0.5 =
/// centred).
#[allow(clippy::too_many_arguments)]
fn draw_text(dst: &mut RgbImage, font: &FontRef<'static>, text: &str, size: f32, x: f64, y: f64, anchor: (f64, f64), rotate: bool) {
    if text.is_empty() {
        return;
    }
    let cov = text_coverage(font, text, size);
    let (w, h) = if rotate { (cov.height(), cov.width()) } else { cov.dimensions() };
    let left = (x - anchor.0 * w as f64).round() as i64;
    let top = (y - anchor.1 * h as f64).round() as i64;
    blit(dst, &cov, left, top, [0, 0, 0], rotate);
}

/// Text and axes of a curve plot.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSpec {
    /// Title drawn above the plot.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// x-axis range.
    pub x_range: (f64, f64),
    /// Optional vertical marker (e.g. the AUPRO FPR limit 0.3).
    pub x_marker: Option<f64>,
    /// Size in pixels (width, height).
    pub size: (u32, u32),
}

impl PlotSpec {
    /// A ROC-curve plot spec.
    pub fn roc(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: "false positive rate".into(),
            y_label: "true positive rate".into(),
            x_range: (0.0, 1.0),
            x_marker: None,
            size: (640, 480),
        }
    }
    /// A PRO-curve plot spec with the integration limit marked.
    pub fn pro(title: impl Into<String>, fpr_limit: f64) -> Self {
        Self {
            title: title.into(),
            x_label: "false positive rate".into(),
            y_label: "per-region overlap".into(),
            x_range: (0.0, 1.0),
            x_marker: Some(fpr_limit),
            size: (640, 480),
        }
    }
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Renders curves (label, curve) into an RGB image: lines by plotters, text (title, axis labels,
/// tick labels, legend) by the embedded font.
pub fn render_curves(spec: &PlotSpec, series: &[(&str, &Curve)]) -> Result<RgbImage> {
    let perr = |m: String| EvalError::Plot { path: Path::new("<memory>").to_path_buf(), message: m };
    let (w, h) = spec.size;
    if w < 160 || h < 120 {
        return Err(EvalError::InvalidInput(format!("plot size {w}x{h} is below 160x120")));
    }
    let (x0, x1) = spec.x_range;
    if x0.is_nan() || x1.is_nan() || x0 >= x1 {
        return Err(EvalError::InvalidInput(format!("plot x range {:?} is empty", spec.x_range)));
    }
    let font = font().map_err(perr)?;
    let ticks = 10usize;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let mut tick_px: Vec<(f64, (i32, i32))> = Vec::new();
    let mut ytick_px: Vec<(f64, (i32, i32))> = Vec::new();
    let mut legend_rows: Vec<(i32, i32)> = Vec::new();
    let (top, left, bottom, right) = (40u32, 60u32, 50u32, 16u32);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(e.to_string()))?;
        let area = root.margin(top, bottom, left, right);
        let mut chart = ChartBuilder::on(&area)
            .build_cartesian_2d(x0..x1, 0.0f64..1.0f64)
            .map_err(|e| perr(e.to_string()))?;
        // Grid and frame (no text through plotters).
        let grid = BLACK.mix(0.12);
        for k in 0..=ticks {
            let fx = x0 + (x1 - x0) * k as f64 / ticks as f64;
            let fy = k as f64 / ticks as f64;
            chart
                .draw_series(LineSeries::new(vec![(fx, 0.0), (fx, 1.0)], grid))
                .map_err(|e| perr(e.to_string()))?;
            chart
                .draw_series(LineSeries::new(vec![(x0, fy), (x1, fy)], grid))
                .map_err(|e| perr(e.to_string()))?;
            tick_px.push((fx, chart.backend_coord(&(fx, 0.0))));
            ytick_px.push((fy, chart.backend_coord(&(x0, fy))));
        }
        chart
            .draw_series(LineSeries::new(vec![(x0, 0.0), (x1, 0.0), (x1, 1.0), (x0, 1.0), (x0, 0.0)], BLACK))
            .map_err(|e| perr(e.to_string()))?;
        if let Some(m) = spec.x_marker {
            chart
                .draw_series(LineSeries::new(vec![(m, 0.0), (m, 1.0)], BLACK.mix(0.5).stroke_width(1)))
                .map_err(|e| perr(e.to_string()))?;
        }
        for (k, (_, c)) in series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let pts: Vec<(f64, f64)> = c
                .x
                .iter()
                .zip(&c.y)
                .filter(|(x, y)| x.is_finite() && y.is_finite() && **x >= x0 && **x <= x1)
                .map(|(&x, &y)| (x, y.clamp(0.0, 1.0)))
                .collect();
            chart.draw_series(LineSeries::new(pts, color.stroke_width(2))).map_err(|e| perr(e.to_string()))?;
        }
        // Legend box in the lower right: one row per series, 18 px high.
        if !series.is_empty() {
            let (bx1, by1) = chart.backend_coord(&(x1, 0.0));
            let lw = 150i32;
            let lh = 18 * series.len() as i32 + 8;
            let (lx0, ly0) = (bx1 - lw - 10, by1 - lh - 10);
            root.draw(&Rectangle::new([(lx0, ly0), (lx0 + lw, ly0 + lh)], WHITE.mix(0.9).filled()))
                .map_err(|e| perr(e.to_string()))?;
            root.draw(&Rectangle::new([(lx0, ly0), (lx0 + lw, ly0 + lh)], BLACK.stroke_width(1)))
                .map_err(|e| perr(e.to_string()))?;
            for k in 0..series.len() {
                let y = ly0 + 13 + 18 * k as i32;
                let color = PALETTE[k % PALETTE.len()];
                root.draw(&PathElement::new(vec![(lx0 + 8, y), (lx0 + 30, y)], color.stroke_width(2)))
                    .map_err(|e| perr(e.to_string()))?;
                legend_rows.push((lx0 + 36, y));
            }
        }
        root.present().map_err(|e| perr(e.to_string()))?;
    }
    let mut img = RgbImage::from_raw(w, h, buf).ok_or_else(|| perr("buffer size".into()))?;
    draw_text(&mut img, font, &spec.title, 20.0, w as f64 / 2.0, 8.0, (0.5, 0.0), false);
    for (v, (px, py)) in &tick_px {
        draw_text(&mut img, font, &format!("{v:.1}"), 12.0, *px as f64, *py as f64 + 4.0, (0.5, 0.0), false);
    }
    for (v, (px, py)) in &ytick_px {
        draw_text(&mut img, font, &format!("{v:.1}"), 12.0, *px as f64 - 5.0, *py as f64, (1.0, 0.5), false);
    }
    draw_text(&mut img, font, &spec.x_label, 14.0, (left + (w - left - right) / 2) as f64, (h - 6) as f64, (0.5, 1.0), false);
    draw_text(&mut img, font, &spec.y_label, 14.0, 6.0, (top + (h - top - bottom) / 2) as f64, (0.0, 0.5), true);
    for ((label, _), (x, y)) in series.iter().zip(&legend_rows) {
        draw_text(&mut img, font, label, 13.0, *x as f64, *y as f64, (0.0, 0.5), false);
    }
    Ok(img)
}

/// Encodes an RGB image as PNG and writes it atomically.
pub fn write_png(path: impl AsRef<Path>, img: &RgbImage) -> Result<()> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| EvalError::Encode { path: path.to_path_buf(), message: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Plots curves to a PNG file (atomically).
pub fn plot_curves(path: impl AsRef<Path>, spec: &PlotSpec, series: &[(&str, &Curve)]) -> Result<()> {
    let path = path.as_ref();
    let img = render_curves(spec, series).map_err(|e| match e {
        EvalError::Plot { message, .. } => EvalError::Plot { path: path.to_path_buf(), message },
        other => other,
    })?;
    write_png(path, &img)
}

/// A jet-like colormap: 0 -> dark blue, 0.35 -> cyan, 0.5 -> green, 0.65 -> yellow, 1 -> dark
/// red (piecewise linear, matplotlib's `jet` shape). Input clamped to [0, 1]; NaN -> 0.
pub fn jet(t: f32) -> Rgb<u8> {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let f = |x: f32| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
    let r = f((4.0 * t - 1.5).min(-4.0 * t + 4.5));
    let g = f((4.0 * t - 0.5).min(-4.0 * t + 3.5));
    let b = f((4.0 * t + 0.5).min(-4.0 * t + 2.5));
    Rgb([r, g, b])
}

/// Options of [`heatmap_panel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PanelOptions {
    /// Scores mapped to the ends of the colormap (lo, hi); use the same for a whole category.
    pub range: (f32, f32),
    /// Alarm threshold (e.g. the pixel F1-max threshold): pixels with score >= it are tinted
    /// red in the overlay tile.
    pub threshold: f32,
    /// White gap between tiles, in pixels.
    pub gap: u32,
}

/// Builds the heatmap panel of one test image at the map resolution (h x w), four tiles left to
/// right: the image (resized bilinearly to the map size) | the ground truth (white = defect,
/// black when there is no mask) | the anomaly map in a jet colormap over `opts.range` | the
/// image with pixels `>= opts.threshold` tinted red and the ground-truth outline in green.
/// No text is drawn on panels.
pub fn heatmap_panel(
    image: &DynamicImage,
    mask: Option<ArrayView2<'_, bool>>,
    map: ArrayView2<'_, f32>,
    opts: &PanelOptions,
) -> Result<RgbImage> {
    let (h, w) = map.dim();
    if h == 0 || w == 0 {
        return Err(EvalError::InvalidInput("heatmap panel: empty anomaly map".into()));
    }
    if let Some(m) = &mask
        && m.dim() != (h, w)
    {
        return Err(EvalError::InvalidInput(format!(
            "heatmap panel: mask is {}x{} but the map is {h}x{w}",
            m.dim().0,
            m.dim().1
        )));
    }
    let (lo, hi) = opts.range;
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(EvalError::InvalidInput(format!("heatmap panel: range ({lo}, {hi}) is not finite")));
    }
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (hu, wu) = (h as u32, w as u32);
    let img = image::imageops::resize(&image.to_rgb8(), wu, hu, image::imageops::FilterType::Triangle);
    let gap = opts.gap;
    let mut out = RgbImage::from_pixel(4 * wu + 3 * gap, hu, Rgb([255, 255, 255]));
    let is_def = |i: usize, j: usize| mask.as_ref().is_some_and(|m| m.get((i, j)).copied().unwrap_or(false));
    for i in 0..h {
        for j in 0..w {
            let (x, y) = (j as u32, i as u32);
            let px = *img.get_pixel(x, y);
            out.put_pixel(x, y, px);
            let d = is_def(i, j);
            out.put_pixel(wu + gap + x, y, if d { Rgb([255, 255, 255]) } else { Rgb([0, 0, 0]) });
            let v = map.get((i, j)).copied().unwrap_or(f32::NAN);
            out.put_pixel(2 * (wu + gap) + x, y, jet((v - lo) / span));
            let mut o = px;
            if v >= opts.threshold {
                o = Rgb([
                    ((px[0] as u16 + 255) / 2) as u8,
                    (px[1] as u16 / 2) as u8,
                    (px[2] as u16 / 2) as u8,
                ]);
            }
            let edge = d && (i == 0
                || j == 0
                || i + 1 == h
                || j + 1 == w
                || !is_def(i - 1, j)
                || !is_def(i + 1, j)
                || !is_def(i, j - 1)
                || !is_def(i, j + 1));
            if edge {
                o = Rgb([0, 255, 0]);
            }
            out.put_pixel(3 * (wu + gap) + x, y, o);
        }
    }
    Ok(out)
}
