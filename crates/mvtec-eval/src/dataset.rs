//! Dataset discovery (MVTec AD layout and a generic folder layout), validation, image decoding
//! and mask loading.

use std::fmt;
use std::path::{Path, PathBuf};

use image::DynamicImage;
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// File extensions recognised as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp"];

/// Whether `path` has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Where the parts of one category live, relative to the category folder.
///
/// The default is the MVTec AD layout: `train/good`, `test/<DEFECT>`, `ground_truth/<DEFECT>/
/// NNN_mask.png`, with `good` the defect-free test folder. VisA and BTAD fit after conversion to
/// this layout (or by changing the names here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FolderLayout {
    /// Training images (defect-free), relative to the category folder.
    pub train_dir: String,
    /// Test root; each sub-folder is one defect type (or the good folder).
    pub test_dir: String,
    /// Mask root (`<mask_dir>/<DEFECT>/<stem><mask_suffix>.<ext>`); `None` for no masks.
    pub mask_dir: Option<String>,
    /// Name of the defect-free test sub-folder.
    pub good_name: String,
    /// Suffix appended to the image stem to form the mask stem (`_mask` for MVTec); a mask named
    /// exactly like its image (empty suffix) is also accepted.
    pub mask_suffix: String,
}

impl Default for FolderLayout {
    fn default() -> Self {
        Self {
            train_dir: "train/good".into(),
            test_dir: "test".into(),
            mask_dir: Some("ground_truth".into()),
            good_name: "good".into(),
            mask_suffix: "_mask".into(),
        }
    }
}

impl FolderLayout {
    /// Sets the training folder.
    pub fn with_train_dir(mut self, dir: impl Into<String>) -> Self {
        self.train_dir = dir.into();
        self
    }
    /// Sets the test folder.
    pub fn with_test_dir(mut self, dir: impl Into<String>) -> Self {
        self.test_dir = dir.into();
        self
    }
    /// Sets the mask folder (`None`: no masks).
    pub fn with_mask_dir(mut self, dir: Option<String>) -> Self {
        self.mask_dir = dir;
        self
    }
    /// Sets the name of the defect-free test sub-folder.
    pub fn with_good_name(mut self, name: impl Into<String>) -> Self {
        self.good_name = name.into();
        self
    }
    /// Sets the mask-name suffix.
    pub fn with_mask_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.mask_suffix = suffix.into();
        self
    }
    /// Checks the layout: folder names must be non-empty, relative and without `..`.
    pub fn validate(&self) -> Result<()> {
        let mut dirs = vec![("train_dir", &self.train_dir), ("test_dir", &self.test_dir), ("good_name", &self.good_name)];
        if let Some(m) = &self.mask_dir {
            dirs.push(("mask_dir", m));
        }
        for (what, d) in dirs {
            let p = Path::new(d);
            if d.is_empty() || p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(EvalError::InvalidInput(format!(
                    "layout {what} '{d}' must be a non-empty relative path without '..'"
                )));
            }
        }
        Ok(())
    }
}

/// One test image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSample {
    /// The image file.
    pub path: PathBuf,
    /// The defect type (the test sub-folder name; the good name for defect-free images).
    pub defect: String,
    /// Whether the image is anomalous (its folder is not the good folder).
    pub is_anomalous: bool,
    /// The ground-truth mask, if one was found (never for good images).
    pub mask: Option<PathBuf>,
}

/// One category: its training images and its test samples, in sorted, deterministic order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// The category name (its folder name).
    pub name: String,
    /// The category folder.
    pub dir: PathBuf,
    /// Training image files, sorted.
    pub train: Vec<PathBuf>,
    /// Test samples, sorted by defect type then file name.
    pub test: Vec<TestSample>,
    /// Mask files that belong to no test image (reported by [`Category::validate`]).
    pub orphan_masks: Vec<PathBuf>,
    /// Problems found while listing (missing test folder, etc.), reported by validation.
    pub listing_issues: Vec<DatasetIssue>,
}

/// A whole dataset: its categories, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// The dataset root.
    pub root: PathBuf,
    /// The categories, sorted by name.
    categories: Vec<Category>,
}

fn io_err(path: &Path, source: std::io::Error) -> EvalError {
    EvalError::Io { path: path.to_path_buf(), source }
}

/// Sorted entries of a folder (files and folders), as paths.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// Sorted image files of a folder (non-image files are ignored).
fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(list_dir(dir)?.into_iter().filter(|p| p.is_file() && is_image_file(p)).collect())
}

fn file_name_string(p: &Path) -> String {
    p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn stem_string(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

impl Dataset {
    /// Opens an MVTec-AD-layout dataset: every sub-folder of `root` holding `train/good` is a
    /// category. Files are only listed here, not decoded.
    pub fn open_mvtec(root: impl AsRef<Path>) -> Result<Dataset> {
        Self::open_with_layout(root, &FolderLayout::default())
    }

    /// Opens a dataset whose categories are the sub-folders of `root` that contain
    /// `layout.train_dir`.
    pub fn open_with_layout(root: impl AsRef<Path>, layout: &FolderLayout) -> Result<Dataset> {
        layout.validate()?;
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(EvalError::NoRoot(root.to_path_buf()));
        }
        let mut categories = Vec::new();
        for dir in list_dir(root)? {
            if dir.is_dir() && dir.join(&layout.train_dir).is_dir() {
                let name = file_name_string(&dir);
                categories.push(Category::open(name, &dir, layout)?);
            }
        }
        if categories.is_empty() {
            return Err(EvalError::NoCategories(root.to_path_buf()));
        }
        Ok(Dataset { root: root.to_path_buf(), categories })
    }

    /// Opens ONE category stored in a generic folder (`dir/train/good`, `dir/test/<any name>`,
    /// optional masks folder, as described by `layout`), as a dataset of that single category
    /// named after the folder.
    pub fn open_folder(dir: impl AsRef<Path>, layout: &FolderLayout) -> Result<Dataset> {
        layout.validate()?;
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(EvalError::NoRoot(dir.to_path_buf()));
        }
        if !dir.join(&layout.train_dir).is_dir() {
            return Err(EvalError::NoCategories(dir.to_path_buf()));
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "category".into());
        let cat = Category::open(name, dir, layout)?;
        Ok(Dataset { root: dir.to_path_buf(), categories: vec![cat] })
    }

    /// The categories, sorted by name.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// The names of the categories, sorted.
    pub fn category_names(&self) -> Vec<&str> {
        self.categories.iter().map(|c| c.name.as_str()).collect()
    }

    /// The category called `name`; an unknown name gives an error listing the available ones.
    pub fn category(&self, name: &str) -> Result<&Category> {
        self.categories.iter().find(|c| c.name == name).ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> EvalError {
        EvalError::UnknownCategory {
            name: name.to_string(),
            root: self.root.clone(),
            available: self.category_names().join(", "),
        }
    }

    /// Keeps only the named categories (the CLI's `--category` filter), in the dataset's sorted
    /// order. An empty filter keeps everything; an unknown name is an error listing the
    /// available ones.
    pub fn filter<S: AsRef<str>>(self, names: &[S]) -> Result<Dataset> {
        if names.is_empty() {
            return Ok(self);
        }
        for n in names {
            if !self.categories.iter().any(|c| c.name == n.as_ref()) {
                return Err(self.unknown(n.as_ref()));
            }
        }
        let categories =
            self.categories.into_iter().filter(|c| names.iter().any(|n| n.as_ref() == c.name)).collect();
        Ok(Dataset { root: self.root, categories })
    }
}

/// A problem found by [`Category::validate`] (or while listing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DatasetIssue {
    /// A defective test image has no mask.
    MissingMask {
        /// The test image.
        image: PathBuf,
    },
    /// A mask matches no test image.
    MaskWithoutImage {
        /// The mask.
        mask: PathBuf,
    },
    /// A mask's size differs from its image's.
    MaskSizeMismatch {
        /// The test image.
        image: PathBuf,
        /// The mask.
        mask: PathBuf,
        /// Image (width, height).
        image_size: (u32, u32),
        /// Mask (width, height).
        mask_size: (u32, u32),
    },
    /// An image or mask cannot be read or decoded.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The training folder holds no image.
    EmptyTrain {
        /// The training folder.
        dir: PathBuf,
    },
    /// The training folder holds fewer than two images.
    TooFewTrain {
        /// The training folder.
        dir: PathBuf,
        /// How many images it holds.
        count: usize,
    },
    /// The test folder is missing or holds no image.
    EmptyTest {
        /// The test folder.
        dir: PathBuf,
    },
}

impl fmt::Display for DatasetIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetIssue::MissingMask { image } => write!(f, "defect image {} has no mask", image.display()),
            DatasetIssue::MaskWithoutImage { mask } => write!(f, "mask {} has no test image", mask.display()),
            DatasetIssue::MaskSizeMismatch { image, mask, image_size, mask_size } => write!(
                f,
                "mask {} is {}x{} but its image {} is {}x{}",
                mask.display(),
                mask_size.0,
                mask_size.1,
                image.display(),
                image_size.0,
                image_size.1
            ),
            DatasetIssue::Unreadable { path, message } => write!(f, "cannot read {}: {message}", path.display()),
            DatasetIssue::EmptyTrain { dir } => write!(f, "training folder {} holds no image", dir.display()),
            DatasetIssue::TooFewTrain { dir, count } => {
                write!(f, "training folder {} holds {count} image(s); at least 2 are needed", dir.display())
            }
            DatasetIssue::EmptyTest { dir } => write!(f, "test folder {} is missing or holds no image", dir.display()),
        }
    }
}

/// Formats a list of issues, one per line.
pub(crate) fn format_issues(issues: &[DatasetIssue]) -> String {
    issues.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n")
}

/// Options of [`Category::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateOptions {
    /// Fully decode every image and mask (in parallel) to find truncated files. Without it,
    /// only the headers are read (cheap).
    pub decode: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self { decode: true }
    }
}

impl Category {
    /// Lists one category folder with the given layout (nothing is decoded).
    pub fn open(name: impl Into<String>, dir: impl AsRef<Path>, layout: &FolderLayout) -> Result<Category> {
        layout.validate()?;
        let dir = dir.as_ref();
        let name = name.into();
        let mut listing_issues = Vec::new();
        let train_dir = dir.join(&layout.train_dir);
        let train = if train_dir.is_dir() { list_images(&train_dir)? } else { Vec::new() };
        let test_dir = dir.join(&layout.test_dir);
        let mask_root = layout.mask_dir.as_ref().map(|m| dir.join(m));
        let mut test = Vec::new();
        let mut used_masks = std::collections::BTreeSet::new();
        if test_dir.is_dir() {
            for sub in list_dir(&test_dir)? {
                if !sub.is_dir() {
                    continue;
                }
                let defect = file_name_string(&sub);
                let is_anomalous = defect != layout.good_name;
                let mask_files = match (&mask_root, is_anomalous) {
                    (Some(root), true) if root.join(&defect).is_dir() => list_images(&root.join(&defect))?,
                    _ => Vec::new(),
                };
                for path in list_images(&sub)? {
                    let stem = stem_string(&path);
                    let mask = if is_anomalous {
                        let with_suffix = format!("{stem}{}", layout.mask_suffix);
                        mask_files
                            .iter()
                            .find(|m| stem_string(m) == with_suffix)
                            .or_else(|| mask_files.iter().find(|m| stem_string(m) == stem))
                            .cloned()
                    } else {
                        None
                    };
                    if let Some(m) = &mask {
                        used_masks.insert(m.clone());
                    }
                    test.push(TestSample { path, defect: defect.clone(), is_anomalous, mask });
                }
            }
        }
        if test.is_empty() {
            listing_issues.push(DatasetIssue::EmptyTest { dir: test_dir });
        }
        let mut orphan_masks = Vec::new();
        if let Some(root) = &mask_root
            && root.is_dir()
        {
            for sub in list_dir(root)? {
                if !sub.is_dir() || file_name_string(&sub) == layout.good_name {
                    continue;
                }
                for m in list_images(&sub)? {
                    if !used_masks.contains(&m) {
                        orphan_masks.push(m);
                    }
                }
            }
        }
        Ok(Category { name, dir: dir.to_path_buf(), train, test, orphan_masks, listing_issues })
    }

    /// The training folder (the parent of the training images, or the layout's folder).
    fn train_dir(&self) -> PathBuf {
        self.train.first().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_else(|| self.dir.join("train/good"))
    }

    /// Lists every problem of this category: defect image without mask, mask without image,
    /// mask size mismatch, unreadable or truncated image/mask (full decode when
    /// `opts.decode`, in parallel; header only otherwise), empty training set, fewer than 2
    /// training images, missing or empty test folder. Never panics; an empty list means valid.
    pub fn issues(&self, opts: ValidateOptions) -> Vec<DatasetIssue> {
        let mut issues = self.listing_issues.clone();
        let train_dir = self.train_dir();
        match self.train.len() {
            0 => issues.push(DatasetIssue::EmptyTrain { dir: train_dir }),
            1 => issues.push(DatasetIssue::TooFewTrain { dir: train_dir, count: 1 }),
            _ => {}
        }
        for s in &self.test {
            if s.is_anomalous && s.mask.is_none() {
                issues.push(DatasetIssue::MissingMask { image: s.path.clone() });
            }
        }
        for m in &self.orphan_masks {
            issues.push(DatasetIssue::MaskWithoutImage { mask: m.clone() });
        }
        // Per-file checks in parallel: header (or full decode) of every image, sizes of masks.
        let files: Vec<(&PathBuf, Option<&PathBuf>)> = self
            .train
            .iter()
            .map(|p| (p, None))
            .chain(self.test.iter().map(|s| (&s.path, s.mask.as_ref())))
            .collect();
        let mut per_file: Vec<DatasetIssue> = files
            .par_iter()
            .flat_map_iter(|(path, mask)| {
                let mut out = Vec::new();
                let dims = check_file(path, opts.decode);
                match (&dims, mask) {
                    (Err(e), _) => out.push(e.clone()),
                    (Ok(idims), Some(m)) => match check_file(m, opts.decode) {
                        Err(e) => out.push(e),
                        Ok(mdims) if mdims != *idims => out.push(DatasetIssue::MaskSizeMismatch {
                            image: (*path).clone(),
                            mask: (*m).clone(),
                            image_size: *idims,
                            mask_size: mdims,
                        }),
                        Ok(_) => {}
                    },
                    _ => {}
                }
                out
            })
            .collect();
        issues.append(&mut per_file);
        issues
    }

    /// Validates the category: `Ok(())` or [`EvalError::InvalidDataset`] listing every problem
    /// found by [`Category::issues`].
    pub fn validate(&self, opts: ValidateOptions) -> Result<()> {
        let problems = self.issues(opts);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EvalError::InvalidDataset { category: self.name.clone(), problems })
        }
    }

    /// Image-level labels of the test samples (true = anomalous), in test order.
    pub fn test_labels(&self) -> Vec<bool> {
        self.test.iter().map(|s| s.is_anomalous).collect()
    }
}

/// Header (or full) check of one file, giving its (width, height).
fn check_file(path: &Path, decode: bool) -> std::result::Result<(u32, u32), DatasetIssue> {
    let unreadable = |e: String| DatasetIssue::Unreadable { path: path.to_path_buf(), message: e };
    if decode {
        let img = decode_image(path).map_err(|e| unreadable(e.to_string()))?;
        Ok((img.width(), img.height()))
    } else {
        image::image_dimensions(path).map_err(|e| unreadable(e.to_string()))
    }
}

/// Decodes one image file (format guessed from its content), with an error naming the file.
pub fn decode_image(path: &Path) -> Result<DynamicImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| io_err(path, e))?
        .with_guessed_format()
        .map_err(|e| io_err(path, e))?;
    reader.decode().map_err(|e| EvalError::Decode { path: path.to_path_buf(), message: e.to_string() })
}

/// Source index of every output index of a nearest-neighbour resize from `inp` to `out`
/// samples, exactly as PIL's `Image.resize(..., NEAREST)`: PIL (`ImagingScaleAffine`) starts
/// at `0.5 * inp / out` and ADDS the scale once per output sample in f64, truncating each
/// partial sum. That accumulated round-off makes it differ from the exact
/// `floor((i + 0.5) * inp / out)` on non-integer ratios (25 of 224 columns for 256 -> 224),
/// which moved AUPRO by 0.02 on the dev set; tests compare this table with PIL's output.
pub(crate) fn nearest_table(inp: usize, out: usize) -> Vec<usize> {
    let scale = inp as f64 / out.max(1) as f64;
    let mut x = 0.5 * scale;
    let last = inp.saturating_sub(1);
    (0..out)
        .map(|_| {
            let v = (x as usize).min(last);
            x += scale;
            v
        })
        .collect()
}

/// Offset of a centred window of `crop` samples in `size` samples, exactly as torchvision's
/// `CenterCrop` (`int(round((size - crop) / 2.0))`, Python's round half to even) and therefore
/// as `backbone::resize_and_crop`, which crops the images: e.g. `(10, 7) -> 2` (1.5 rounds up
/// to 2) but `(12, 7) -> 2` (2.5 rounds down to 2). Needs `crop <= size`.
pub(crate) fn center_crop_offset(size: usize, crop: usize) -> usize {
    let x = size.saturating_sub(crop);
    let half = x / 2;
    if x % 2 == 1 && half % 2 == 1 { half + 1 } else { half }
}

/// The largest side [`MaskGeometry`] accepts (a mask of this side is 256 MiB of `bool`s).
pub const MAX_MASK_SIDE: usize = 16384;

/// How a ground-truth mask is brought onto the pixel grid of the anomaly map, with the geometry
/// the model's images had: the whole mask is resized to `resize x resize` (nearest neighbour,
/// exactly as PIL's `Image.NEAREST`), then, with `crop: Some(c)`, only its central `c x c`
/// square is kept, at the offsets of torchvision's `CenterCrop` (the same rule as
/// `backbone::resize_and_crop`, which crops the images: offset `round((resize - c) / 2)`, half
/// to even). So a defect that the image crop cuts away is cut from the mask too, and every
/// kept mask pixel lies under the map pixel that saw it.
///
/// ```
/// use mvtec_eval::MaskGeometry;
///
/// // Images resized to 256 x 256 and centre-cropped to 224 x 224 (map side 224).
/// let g = MaskGeometry::new(256, Some(224));
/// assert_eq!(g.side(), 224);
/// assert_eq!(MaskGeometry::resize(224).side(), 224);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskGeometry {
    /// Side of the square the whole mask is resized to (1..=[`MAX_MASK_SIDE`]).
    pub resize: usize,
    /// Side of the central square kept after the resize (1..=`resize`); `None` keeps it all.
    pub crop: Option<usize>,
}

impl MaskGeometry {
    /// Resize to `resize x resize`, then keep the central `crop x crop` (`None`: no crop).
    pub fn new(resize: usize, crop: Option<usize>) -> Self {
        Self { resize, crop }
    }

    /// Resize to `side x side`, no crop.
    pub fn resize(side: usize) -> Self {
        Self { resize: side, crop: None }
    }

    /// The side of the masks this geometry produces (the crop if any, else the resize): the side
    /// of the anomaly map.
    pub fn side(&self) -> usize {
        self.crop.unwrap_or(self.resize)
    }

    /// `(offset, side)` of the kept window in the resized mask, or an error naming `path`.
    fn window(&self, path: &Path) -> Result<(usize, usize)> {
        let bad = |m: String| Err(EvalError::InvalidInput(format!("mask {}: {m}", path.display())));
        if self.resize == 0 || self.resize > MAX_MASK_SIDE {
            return bad(format!("resize side {} must be in 1..={MAX_MASK_SIDE}", self.resize));
        }
        match self.crop {
            None => Ok((0, self.resize)),
            Some(c) if c == 0 || c > self.resize => bad(format!("centre crop {c} must be in 1..={}", self.resize)),
            Some(c) => Ok((center_crop_offset(self.resize, c), c)),
        }
    }
}

/// Loads a ground-truth mask onto the map's pixel grid (see [`MaskGeometry`]): the image is
/// converted to RGB (greyscale replicated, alpha dropped, 16-bit scaled to 8-bit), a pixel is a
/// defect when its largest colour channel is > 127 (for L/LA masks: its grey value), and the
/// result is resized with nearest neighbour exactly as PIL's `Image.NEAREST`, then centre-cropped
/// as the images were. Returns `side x side` ([`MaskGeometry::side`]).
pub fn load_mask(path: &Path, geometry: MaskGeometry) -> Result<Array2<bool>> {
    let (offset, side) = geometry.window(path)?;
    let img = decode_image(path)?.to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(EvalError::Decode { path: path.to_path_buf(), message: "empty image".into() });
    }
    let raw = img.as_raw();
    // The source pixel of every resized index, restricted to the crop window.
    let window = |table: Vec<usize>| table.into_iter().skip(offset).take(side).collect::<Vec<_>>();
    let cols = window(nearest_table(w, geometry.resize));
    let rows = window(nearest_table(h, geometry.resize));
    let mut out = Array2::from_elem((side, side), false);
    for (mut row, &si) in out.rows_mut().into_iter().zip(&rows) {
        for (v, &sj) in row.iter_mut().zip(&cols) {
            let idx = (si * w + sj) * 3;
            if let Some(px) = raw.get(idx..idx + 3) {
                *v = px.iter().copied().max().unwrap_or(0) > 127;
            }
        }
    }
    Ok(out)
}

/// Loads the mask of a test sample with `geometry` ([`load_mask`]), after checking (cheaply,
/// from the file headers) that the mask has the same size as its image: a mismatch is an error
/// naming both files. Good samples (no mask) give `None`.
pub fn load_sample_mask(sample: &TestSample, geometry: MaskGeometry) -> Result<Option<Array2<bool>>> {
    let Some(mask) = &sample.mask else { return Ok(None) };
    let (iw, ih) = image::image_dimensions(&sample.path)
        .map_err(|e| EvalError::Decode { path: sample.path.clone(), message: e.to_string() })?;
    let (mw, mh) =
        image::image_dimensions(mask).map_err(|e| EvalError::Decode { path: mask.clone(), message: e.to_string() })?;
    if (iw, ih) != (mw, mh) {
        return Err(EvalError::MaskSizeMismatch {
            image: sample.path.clone(),
            mask: mask.clone(),
            image_w: iw,
            image_h: ih,
            mask_w: mw,
            mask_h: mh,
        });
    }
    load_mask(mask, geometry).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parity with PIL: `tests/fixtures/nearest.json` holds the source indices of
    /// `Image.resize(..., NEAREST)` (made by `tests/fixtures/generate.py`).
    #[test]
    fn mask_nearest_resize_matches_pil() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nearest.json");
        let cases: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        for case in cases.as_array().unwrap() {
            let n = case["in"].as_u64().unwrap() as usize;
            let m = case["out"].as_u64().unwrap() as usize;
            let want: Vec<usize> = case["src"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            assert_eq!(nearest_table(n, m), want, "{n} -> {m}");
        }
    }

    /// torchvision's `int(round((size - crop) / 2.0))`, values from Python 3 (round half to even).
    #[test]
    fn center_crop_offset_is_pythons_round() {
        // (size, crop, Python's offset): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4, 16.0 -> 16
        for (size, crop, want) in [(8, 7, 0), (10, 7, 2), (12, 7, 2), (14, 7, 4), (256, 224, 16), (7, 7, 0), (380, 331, 24)] {
            assert_eq!(center_crop_offset(size, crop), want, "{size} -> {crop}");
        }
    }
}
