//! Image arguments: files, folders (searched recursively) and glob patterns, expanded into a
//! sorted, de-duplicated list of image files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The most images one command takes (a typo such as `/` must not walk the whole disk forever).
pub const MAX_IMAGES: usize = 1_000_000;

/// Expands `args` (what the user typed for `what`, e.g. `--train`): an existing file is taken
/// as it is (whatever its extension), a folder gives every image file under it (recursively,
/// by extension, hidden entries skipped), anything else is a glob pattern that must match
/// something. The result is sorted and has no duplicates; an empty result is an error.
pub fn collect_images(args: &[PathBuf], what: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_file() {
            out.push(arg.clone());
        } else if arg.is_dir() {
            let before = out.len();
            walk(arg, &mut out).with_context(|| format!("{what} {}: cannot read folder", arg.display()))?;
            if out.len() == before {
                bail!("{what} {}: no images found (png, jpg, jpeg, tif, tiff, bmp)", arg.display());
            }
        } else {
            let text = arg.to_str().with_context(|| format!("{what} {}: not a file or folder", arg.display()))?;
            if !text.contains(['*', '?', '[']) {
                bail!("{what} {text}: no such file or folder");
            }
            let paths = glob::glob(text).with_context(|| format!("{what} {text}: invalid glob pattern"))?;
            let before = out.len();
            for p in paths {
                let p = p.with_context(|| format!("{what} {text}"))?;
                if p.is_file() && mvtec_eval::is_image_file(&p) {
                    out.push(p);
                }
                if out.len() > MAX_IMAGES {
                    bail!("{what} {text}: more than {MAX_IMAGES} images");
                }
            }
            if out.len() == before {
                bail!("{what} {text}: the pattern matches no image file");
            }
        }
        if out.len() > MAX_IMAGES {
            bail!("{what}: more than {MAX_IMAGES} images");
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        bail!("{what}: no images given");
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        // Symlinked folders are not followed (no cycles).
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() && mvtec_eval::is_image_file(&p) {
            out.push(p);
        }
        if out.len() > MAX_IMAGES {
            bail!("more than {MAX_IMAGES} images under {}", dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_folders_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::create_dir_all(d.join(".hidden")).unwrap();
        for f in ["a/1.png", "a/b/2.jpg", "a/notes.txt", ".hidden/3.png", "x,y.png"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let got = collect_images(&[d.join("a")], "--x").unwrap();
        assert_eq!(got, vec![d.join("a/1.png"), d.join("a/b/2.jpg")]);
        let got = collect_images(&[d.join("a/*/*.jpg"), d.join("x,y.png"), d.join("a/1.png"), d.join("a/1.png")], "--x").unwrap();
        assert_eq!(got, vec![d.join("a/1.png"), d.join("a/b/2.jpg"), d.join("x,y.png")]);
        let e = format!("{:#}", collect_images(&[d.join("nope.png")], "--x").unwrap_err());
        assert!(e.contains("no such file"), "{e}");
        let e = format!("{:#}", collect_images(&[d.join("*.bmp")], "--x").unwrap_err());
        assert!(e.contains("matches no image"), "{e}");
        std::fs::create_dir_all(d.join("empty")).unwrap();
        assert!(collect_images(&[d.join("empty")], "--x").is_err());
    }
}
