//! Masks are resized and centre-cropped exactly like the images (`backbone::resize_and_crop`:
//! PIL resize to S x S, then torchvision `CenterCrop` C x C), so every mask pixel lies under the
//! map pixel that saw it. Expected positions are worked out by hand in the comments.

use std::path::{Path, PathBuf};

use image::{GrayImage, Luma};
use mvtec_eval::{EvalError, MaskGeometry, load_mask};
use ndarray::{Array2, s};

/// Writes a `side x side` greyscale mask, white where `defect(row, col)`.
fn mask_png(dir: &Path, name: &str, side: u32, defect: impl Fn(u32, u32) -> bool) -> PathBuf {
    let p = dir.join(name);
    GrayImage::from_fn(side, side, |x, y| Luma([if defect(y, x) { 255 } else { 0 }])).save(&p).unwrap();
    p
}

fn defects(m: &Array2<bool>) -> Vec<(usize, usize)> {
    m.indexed_iter().filter(|(_, v)| **v).map(|(ij, _)| ij).collect()
}

#[test]
fn crop_removes_a_border_defect_and_moves_an_off_centre_one() {
    let t = tempfile::tempdir().unwrap();
    // 20 x 20: a border defect (rows 0-4, cols 0-4) and an off-centre one (rows 14-16, cols 6-8).
    let p = mask_png(t.path(), "m.png", 20, |r, c| (r <= 4 && c <= 4) || ((14..=16).contains(&r) && (6..=8).contains(&c)));

    // Resize 20 -> 10 (nearest, PIL: source index 1, 3, 5, ..., 19), no crop: the border defect
    // keeps resized rows/cols 0, 1 (sources 1, 3); the other one row 7 (source 15), col 3 (7).
    let full = load_mask(&p, MaskGeometry::resize(10)).unwrap();
    assert_eq!(defects(&full), vec![(0, 0), (0, 1), (1, 0), (1, 1), (7, 3)]);

    // Then the central 7 x 7: offset round((10 - 7) / 2) = round(1.5) = 2, so resized rows and
    // cols 2..9 are kept: the border defect is cut away, (7, 3) becomes (5, 1).
    let g = MaskGeometry::new(10, Some(7));
    assert_eq!(g.side(), 7);
    let cropped = load_mask(&p, g).unwrap();
    assert_eq!(cropped.dim(), (7, 7));
    assert_eq!(defects(&cropped), vec![(5, 1)]);
    assert_eq!(cropped, full.slice(s![2..9, 2..9]));

    // What masks were before the fix: the whole mask resized straight to the map side 7
    // (sources 1, 4, 7, 10, 12, 15, 18) keeps the cut-away border defect at (0..2, 0..2) and
    // puts the other one at (5, 2), one column off.
    let straight = load_mask(&p, MaskGeometry::resize(7)).unwrap();
    assert_eq!(defects(&straight), vec![(0, 0), (0, 1), (1, 0), (1, 1), (5, 2)]);
    assert_ne!(straight, cropped);
}

#[test]
fn crop_window_uses_torchvision_offsets_half_to_even() {
    let t = tempfile::tempdir().unwrap();
    // (size, crop, offset = Python's round((size - crop) / 2)): 2.5 -> 2, 1.5 -> 2, 3.5 -> 4, 0.5 -> 0.
    for (size, crop, off) in [(12usize, 7usize, 2usize), (10, 7, 2), (14, 7, 4), (8, 7, 0), (9, 9, 0)] {
        // Identity resize (size -> size), so the window shows directly: defects on the window's
        // two corners must land on the output's corners, the pixels just outside must be cut.
        let (first, last) = (off, off + crop - 1);
        let inside = |r: usize, c: usize| (r, c) == (first, first) || (r, c) == (last, last);
        let outside = |r: usize, c: usize| (r + 1, c + 1) == (first, first) || (r, c) == (last + 1, last + 1);
        let p = mask_png(t.path(), &format!("m{size}_{crop}.png"), size as u32, |r, c| {
            inside(r as usize, c as usize) || outside(r as usize, c as usize)
        });
        let m = load_mask(&p, MaskGeometry::new(size, Some(crop))).unwrap();
        assert_eq!(m.dim(), (crop, crop));
        assert_eq!(defects(&m), vec![(0, 0), (crop - 1, crop - 1)], "size {size} crop {crop}");
    }
}

#[test]
fn bad_geometry_is_an_error_naming_the_mask() {
    let t = tempfile::tempdir().unwrap();
    let p = mask_png(t.path(), "m.png", 8, |r, _| r < 4);
    for g in [
        MaskGeometry::new(8, Some(9)),
        MaskGeometry::new(8, Some(0)),
        MaskGeometry::resize(0),
        MaskGeometry::resize(mvtec_eval::MAX_MASK_SIDE + 1),
    ] {
        let e = load_mask(&p, g).unwrap_err();
        assert!(matches!(e, EvalError::InvalidInput(_)), "{g:?}: {e}");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    }
    // A crop equal to the resize keeps everything.
    assert_eq!(load_mask(&p, MaskGeometry::new(8, Some(8))).unwrap(), load_mask(&p, MaskGeometry::resize(8)).unwrap());
}
