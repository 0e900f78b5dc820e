//! # mvtec-eval
//!
//! Datasets and metrics for unsupervised visual anomaly detection, with no knowledge of models:
//!
//! - [`Dataset`]: the MVTec AD layout (`CATEGORY/train/good`, `CATEGORY/test/{good,DEFECT}`,
//!   `CATEGORY/ground_truth/DEFECT/NNN_mask.png`) discovered by listing, or any folder layout
//!   ([`FolderLayout`], fits VisA/BTAD after conversion); [`Category::validate`] reports
//!   malformed data; [`decode_image`] decodes with errors naming the file; [`load_mask`]
//!   loads masks onto the map's pixel grid with the images' geometry ([`MaskGeometry`]: nearest
//!   neighbour resize, then the same centre crop as the images; defect where > 127).
//! - Metrics: [`roc_auc`] (= scikit-learn `roc_auc_score`, ties included), [`f1_max`],
//!   [`ImageMetrics`], and [`PixelMetricsAccumulator`] for pixel AUROC, AUPRO (official MVTec
//!   algorithm, FPR <= 0.3) and pixel F1-max, exact, over whole categories at native size.
//! - Reports: [`Report`] (JSON, CSV, Markdown), curve plots and heatmap panels as PNG, and
//!   [`write_atomic`].
//!
//! ```
//! use mvtec_eval::{roc_auc, f1_max, PixelMetricsAccumulator};
//! use ndarray::array;
//!
//! // Image level: one tie between a normal and an anomalous image.
//! let auc = roc_auc(&[0.1, 0.4, 0.4, 0.8], &[false, false, true, true]).unwrap();
//! assert!((auc - 0.875).abs() < 1e-12);
//! let (f1, thr) = f1_max(&[0.1, 0.4, 0.4, 0.8], &[false, false, true, true]).unwrap();
//! assert!((f1 - 0.8).abs() < 1e-12 && thr == 0.4);
//!
//! // Pixel level: a good image and a defective one with a 2-pixel region.
//! let mut acc = PixelMetricsAccumulator::new();
//! acc.push(array![[0.1f32, 0.2], [0.3, 0.1]].view(), None).unwrap();
//! let mask = array![[true, true], [false, false]];
//! acc.push(array![[0.9f32, 0.8], [0.2, 0.1]].view(), Some(mask.view())).unwrap();
//! let m = acc.finish().unwrap();
//! assert_eq!(m.auroc, 1.0);
//! assert_eq!(m.aupro, 1.0);
//! ```
#![deny(missing_docs)]

mod dataset;
mod error;
mod metrics;
mod pixel;
mod plot;
mod report;

pub use dataset::{
    Category, Dataset, DatasetIssue, FolderLayout, IMAGE_EXTENSIONS, MAX_MASK_SIDE, MaskGeometry, TestSample,
    ValidateOptions, decode_image, is_image_file, load_mask, load_sample_mask,
};
pub use error::{EvalError, Result};
pub use metrics::{Curve, ImageMetrics, f1_max, roc_auc};
pub use pixel::{DEFAULT_PRO_FPR_LIMIT, MapScore, PixelMetrics, PixelMetricsAccumulator, PixelMetricsParams};
pub use plot::{PanelOptions, PlotSpec, heatmap_panel, jet, plot_curves, render_curves, write_png};
pub use report::{MEAN_ROW, Report, ReportRow, write_atomic};
