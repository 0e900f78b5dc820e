//! The ImageNet-pretrained check: a checksum proves the bytes, not that the weights were
//! trained. Weights pass when their classifier names the objects of two bundled real
//! photos (scikit-image's `chelsea` and `coffee`, CC0, embedded in the crate):
//! `chelsea`'s top-5 contains one of the cat classes 281 / 282 / 285 (tabby, tiger cat,
//! Egyptian cat) **and** `coffee`'s top-5 contains 967 (espresso). Weights that rank
//! classes at random pass `chelsea` with probability about 3 * 5/1000 and `coffee` with
//! about 5/1000, both together about 1e-4.
//!
//! ```
//! use backbone::pretrained::{check, imagenet_class_name};
//! use backbone::{Classifier, Device, WeightsSource};
//!
//! let c = Classifier::imagenet("efficientnet-lite0".parse()?, WeightsSource::Embedded, Device::Cpu)?;
//! let report = check(&c)?;
//! assert!(report.passed);
//! assert_eq!(imagenet_class_name(967), Some("espresso"));
//! print!("{}", report.summary());
//! # Ok::<(), backbone::BackboneError>(())
//! ```

use image::{ImageFormat, RgbImage};
use serde::{Deserialize, Serialize};

use crate::classifier::{Classifier, IMAGENET_CLASSES};
use crate::error::{BackboneError, Result};

/// Classes ranked per photo.
pub const TOP_K: usize = 5;

static CHELSEA_PNG: &[u8] = include_bytes!("../photos/chelsea.png");
static COFFEE_PNG: &[u8] = include_bytes!("../photos/coffee.png");
static CLASS_NAMES: &str = include_str!("../photos/imagenet_classes.txt");

/// A bundled photo with the classes an ImageNet classifier must rank in its top 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferencePhoto {
    /// Name (`chelsea`, `coffee`).
    pub name: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// The PNG file (scikit-image's, unchanged).
    pub png: &'static [u8],
    /// Accepted classes: one of them must be in the top 5.
    pub expected: &'static [usize],
}

/// The two photos of the check.
pub const PHOTOS: [ReferencePhoto; 2] = [
    ReferencePhoto {
        name: "chelsea",
        description: "Chelsea the cat (scikit-image, CC0, Stefan van der Walt)",
        png: CHELSEA_PNG,
        expected: &[281, 282, 285],
    },
    ReferencePhoto {
        name: "coffee",
        description: "coffee cup (scikit-image, CC0, Rachel Michetti)",
        png: COFFEE_PNG,
        expected: &[967],
    },
];

impl ReferencePhoto {
    /// Decodes the photo.
    pub fn image(&self) -> Result<RgbImage> {
        image::load_from_memory_with_format(self.png, ImageFormat::Png)
            .map(|i| i.to_rgb8())
            .map_err(|e| BackboneError::Image {
                path: format!("<embedded {}.png>", self.name).into(),
                reason: e.to_string(),
            })
    }
}

/// The ImageNet-1k name of class `class` (torchvision's label list), `None` when out of
/// range.
pub fn imagenet_class_name(class: usize) -> Option<&'static str> {
    CLASS_NAMES.lines().nth(class)
}

/// One ranked class with its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedClass {
    /// ImageNet class index.
    pub class: usize,
    /// ImageNet class name.
    pub name: String,
    /// Softmax probability.
    pub probability: f64,
    /// Logit.
    pub logit: f32,
}

/// The check of one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoCheck {
    /// Photo name.
    pub photo: String,
    /// Accepted classes (one of them must be in the top 5).
    pub expected: Vec<usize>,
    /// The top 5, most probable first.
    pub top: Vec<RankedClass>,
    /// Whether an accepted class is in the top 5.
    pub passed: bool,
}

/// The result of [`check`] (serialisable: `gaussad check-pretrained --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainedReport {
    /// Backbone name.
    pub backbone: String,
    /// SHA-256 of the weights file (`synthetic:<seed>` for synthetic weights).
    pub weights_sha256: String,
    /// Network input side (pixels).
    pub input_size: u32,
    /// The acceptance rule, in words.
    pub criterion: String,
    /// One entry per photo.
    pub photos: Vec<PhotoCheck>,
    /// Whether every photo passed.
    pub passed: bool,
}

impl PretrainedReport {
    /// `Ok(self)` when the check passed, else [`BackboneError::NotPretrained`] naming
    /// each failed photo and what it was classified as.
    pub fn require(self) -> Result<Self> {
        if self.passed {
            return Ok(self);
        }
        let details = self
            .photos
            .iter()
            .filter(|p| !p.passed)
            .map(|p| {
                let got = p
                    .top
                    .iter()
                    .map(|r| format!("{} {:?} {:.3}", r.class, r.name, r.probability))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "{} should rank one of classes {:?} in its top {TOP_K} but got [{got}]",
                    p.photo, p.expected
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(BackboneError::NotPretrained {
            backbone: self.backbone,
            weights_sha256: self.weights_sha256,
            details: format!(
                "{details} (these are not ImageNet-trained weights, or not the classifier that belongs to them)"
            ),
        })
    }

    /// A few lines of text: per photo the top 5 with names and probabilities, then the
    /// verdict.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} weights sha256 {} (input {} px)\n",
            self.backbone, self.weights_sha256, self.input_size
        );
        for p in &self.photos {
            s.push_str(&format!(
                "{}: {} (expects one of {:?})\n",
                p.photo,
                if p.passed { "ok" } else { "FAILED" },
                p.expected
            ));
            for (i, r) in p.top.iter().enumerate() {
                s.push_str(&format!(
                    "  {}. {:>3} {:<30} {:.4}\n",
                    i + 1,
                    r.class,
                    r.name,
                    r.probability
                ));
            }
        }
        s.push_str(&format!(
            "pretrained check: {} ({})\n",
            if self.passed { "PASSED" } else { "FAILED" },
            self.criterion
        ));
        s
    }
}

/// Runs the check: classifies the bundled photos with `classifier` (its own
/// preprocessing; [`Classifier::imagenet`] sets the ImageNet recipe) and compares the
/// top 5 with the expected classes. `Ok` with `passed: false` when the weights fail;
/// `Err` when the check cannot run (e.g. a classifier without 1000 classes).
pub fn check(classifier: &Classifier) -> Result<PretrainedReport> {
    let id = classifier.identity();
    if classifier.num_classes() != IMAGENET_CLASSES {
        return Err(BackboneError::NoClassifier {
            path: format!("<{} weights>", id.name).into(),
            reason: format!(
                "the classifier has {} classes, an ImageNet-1k classifier has {IMAGENET_CLASSES}",
                classifier.num_classes()
            ),
        });
    }
    let mut photos = Vec::with_capacity(PHOTOS.len());
    for p in &PHOTOS {
        let top = classifier.classify(&p.image()?, TOP_K)?;
        let passed = top.iter().any(|t| p.expected.contains(&t.class));
        photos.push(PhotoCheck {
            photo: p.name.to_string(),
            expected: p.expected.to_vec(),
            top: top
                .iter()
                .map(|t| RankedClass {
                    class: t.class,
                    name: imagenet_class_name(t.class).unwrap_or("?").to_string(),
                    probability: t.probability,
                    logit: t.logit,
                })
                .collect(),
            passed,
        });
    }
    Ok(PretrainedReport {
        backbone: id.name,
        weights_sha256: id.weights_sha256,
        input_size: id.input_size,
        criterion: "chelsea's top 5 contains 281/282/285 (tabby, tiger cat, Egyptian cat) and coffee's top 5 contains 967 (espresso)".into(),
        passed: photos.iter().all(|p| p.passed),
        photos,
    })
}
