//! Image loading and preprocessing (PIL-exact antialiased bilinear resize,
//! optional centre crop, ImageNet normalisation).

use std::io::Cursor;
use std::path::Path;

use image::{ImageReader, RgbImage};
use ndarray::Array3;
use serde::{Deserialize, Serialize};

use crate::error::{BackboneError, Result};

/// ImageNet channel means (RGB).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Preprocessing parameters: resize every image to `size` x `size` (PIL `BILINEAR`,
/// antialiased, rounded to 8 bits), then optionally keep the central
/// `center_crop` x `center_crop` square (torchvision `CenterCrop` offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Resize target (square), pixels.
    pub size: u32,
    /// Optional centre crop after the resize (must be `<= size`).
    pub center_crop: Option<u32>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            size: 224,
            center_crop: None,
        }
    }
}

impl Preprocess {
    /// Resize to `size`, no crop.
    pub fn new(size: u32) -> Self {
        Self {
            size,
            center_crop: None,
        }
    }
    /// Sets the resize target.
    pub fn with_size(mut self, size: u32) -> Self {
        self.size = size;
        self
    }
    /// Sets the centre crop.
    pub fn with_center_crop(mut self, crop: Option<u32>) -> Self {
        self.center_crop = crop;
        self
    }
    /// Side of the network input (the crop if any, else the resize target).
    pub fn input_size(&self) -> u32 {
        self.center_crop.unwrap_or(self.size)
    }
    /// Checks the parameters (sizes in 16..=4096, crop <= size).
    pub fn validate(&self) -> Result<Self> {
        if !(16..=4096).contains(&self.size) {
            return Err(BackboneError::Preprocess(format!(
                "size {} must be in 16..=4096",
                self.size
            )));
        }
        if let Some(c) = self.center_crop
            && (c < 16 || c > self.size)
        {
            return Err(BackboneError::Preprocess(format!(
                "center_crop {c} must be in 16..=size ({})",
                self.size
            )));
        }
        Ok(*self)
    }
}

/// Loads an image file (PNG, JPEG or TIFF; greyscale replicated to RGB, alpha dropped,
/// 16-bit scaled to 8 bits with rounding, `v8 = round(v16 / 257)`).
/// Errors name the file (missing, corrupt, truncated, unsupported format).
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let err = |reason: String| BackboneError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    if reader.format().is_none() {
        return Err(err(
            "unsupported or unrecognised image format (PNG, JPEG and TIFF are supported)".into(),
        ));
    }
    let img = reader.decode().map_err(|e| err(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("empty image".into()));
    }
    Ok(img.to_rgb8())
}

/// Pillow's fixed-point precision for 8-bit resampling.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter.
fn coeffs(in_size: usize, out_size: usize) -> (usize, Vec<(usize, usize)>, Vec<i32>) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 1.0 * filterscale;
    let ksize = (support.ceil() as usize) * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let t = ((x + xmin) as f64 - center + 0.5) * ss;
            let w = if t.abs() < 1.0 { 1.0 - t.abs() } else { 0.0 };
            *kx = w;
            ww += w;
        }
        for x in 0..ksize {
            let v = if x < n && ww != 0.0 { k[x] / ww } else { 0.0 };
            let f = v * f64::from(1u32 << PRECISION_BITS);
            kk[xx * ksize + x] = if f < 0.0 {
                (f - 0.5) as i32
            } else {
                (f + 0.5) as i32
            };
        }
        bounds.push((xmin, n));
    }
    (ksize, bounds, kk)
}

#[inline]
fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes like Pillow's `Image.resize(size, Image.BILINEAR)` on an RGB image
/// (separable convolution with a support widened by the scale when downscaling,
/// 8-bit fixed point, horizontal pass first). Bit-exact with Pillow >= 7 on the test
/// images (see the parity test).
pub fn resize_bilinear_pil(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    if (iw, ih) == (ow, oh) || iw == 0 || ih == 0 || ow == 0 || oh == 0 {
        return img.clone();
    }
    let src = img.as_raw();
    let half = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass.
    let (tmp, tw) = if ow != iw {
        let (ksize, bounds, kk) = coeffs(iw, ow);
        let mut out = vec![0u8; ow * ih * 3];
        for y in 0..ih {
            let row = &src[y * iw * 3..(y + 1) * iw * 3];
            for (xx, &(xmin, n)) in bounds.iter().enumerate() {
                let k = &kk[xx * ksize..xx * ksize + n];
                let mut s = [half; 3];
                for (x, &kx) in k.iter().enumerate() {
                    let p = (xmin + x) * 3;
                    for c in 0..3 {
                        s[c] += i64::from(row[p + c]) * i64::from(kx);
                    }
                }
                let o = (y * ow + xx) * 3;
                for c in 0..3 {
                    out[o + c] = clip8(s[c]);
                }
            }
        }
        (out, ow)
    } else {
        (src.to_vec(), iw)
    };
    // Vertical pass.
    let out = if oh != ih {
        let (ksize, bounds, kk) = coeffs(ih, oh);
        let mut out = vec![0u8; tw * oh * 3];
        for (yy, &(ymin, n)) in bounds.iter().enumerate() {
            let k = &kk[yy * ksize..yy * ksize + n];
            for x in 0..tw {
                let mut s = [half; 3];
                for (y, &ky) in k.iter().enumerate() {
                    let p = ((ymin + y) * tw + x) * 3;
                    for c in 0..3 {
                        s[c] += i64::from(tmp[p + c]) * i64::from(ky);
                    }
                }
                let o = (yy * tw + x) * 3;
                for c in 0..3 {
                    out[o + c] = clip8(s[c]);
                }
            }
        }
        out
    } else {
        tmp
    };
    RgbImage::from_raw(tw as u32, oh as u32, out).unwrap_or_else(|| img.clone())
}

/// Python's `round(x / 2)` (half to even) for a non-negative integer `x`:
/// torchvision's `CenterCrop` offset.
fn half_round_even(x: u32) -> u32 {
    let a = x / 2;
    if x % 2 == 1 && a % 2 == 1 { a + 1 } else { a }
}

/// Resizes (and centre-crops) an image as the network sees it, still 8-bit RGB.
pub fn resize_and_crop(img: &RgbImage, p: &Preprocess) -> RgbImage {
    let r = resize_bilinear_pil(img, p.size, p.size);
    match p.center_crop {
        Some(c) if c < p.size && c > 0 => {
            let top = half_round_even(r.height() - c);
            let left = half_round_even(r.width() - c);
            image::imageops::crop_imm(&r, left, top, c, c).to_image()
        }
        _ => r,
    }
}

/// Scales an 8-bit RGB image to [0, 1] and normalises with the ImageNet mean/std,
/// as torchvision's `ToTensor` + `Normalize` in f32. Returns `(3, H, W)`.
pub fn normalize(img: &RgbImage) -> Array3<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    Array3::from_shape_fn((3, h, w), |(c, y, x)| {
        let v = f32::from(raw[(y * w + x) * 3 + c]) / 255.0;
        (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
    })
}

/// Full preprocessing of one image: [`resize_and_crop`] then [`normalize`]; `(3, H, W)`.
pub fn preprocess(img: &RgbImage, p: &Preprocess) -> Array3<f32> {
    normalize(&resize_and_crop(img, p))
}
