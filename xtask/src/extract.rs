//! Safe extraction of `.tar.xz` archives.
//!
//! Entries are unpacked into a fresh temporary directory inside the destination; only when
//! the whole archive has been read without error are the extracted top-level items renamed
//! into place (an item that already exists is replaced). An entry with an absolute path, a
//! `..` component, or of a type other than file or directory (links, devices) aborts the
//! extraction before anything is placed.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Which entries to extract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every entry.
    #[default]
    All,
    /// Entries under these top-level folders, plus the files at the archive's top level
    /// (licence, readme). Every name listed must be present in the archive.
    TopLevel(BTreeSet<String>),
}

impl Selection {
    fn wants(&self, rel: &Path, is_dir: bool) -> bool {
        match self {
            Selection::All => true,
            Selection::TopLevel(names) => {
                let mut comps = rel.components();
                let first = comps
                    .next()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned());
                let top_level_file = comps.next().is_none() && !is_dir;
                top_level_file || first.is_some_and(|f| names.contains(&f))
            }
        }
    }
}

/// Removes a directory tree on drop unless disarmed.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn unique_temp(dest: &Path, tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dest.join(format!(".xtask-{tag}-{}-{nanos}", std::process::id()))
}

/// The path of an entry relative to the extraction root, or why it is unsafe.
fn safe_relative(path: &Path) -> std::result::Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok(out)
}

fn corrupt(archive: &Path, e: impl std::fmt::Display) -> Error {
    Error::CorruptArchive {
        archive: archive.to_owned(),
        detail: e.to_string(),
    }
}

/// Extracts the `.tar.xz` file `archive` into `dest` and returns the top-level names placed.
///
/// Nothing is placed in `dest` unless the whole archive decodes cleanly, every entry is
/// safe, and (with [`Selection::TopLevel`]) every requested folder was found; on error the
/// temporary directory is removed.
pub fn extract_tar_xz(archive: &Path, dest: &Path, selection: &Selection) -> Result<Vec<String>> {
    fs::create_dir_all(dest).map_err(|e| Error::io("create directory", dest, e))?;
    let file = File::open(archive).map_err(|e| Error::io("open", archive, e))?;
    let tmp = TempDir {
        path: unique_temp(dest, "extract"),
        keep: false,
    };
    fs::create_dir(&tmp.path).map_err(|e| Error::io("create directory", &tmp.path, e))?;

    let decoder =
        liblzma::read::XzDecoder::new_multi_decoder(BufReader::with_capacity(1 << 20, file));
    let mut tar = tar::Archive::new(decoder);
    let entries = tar.entries().map_err(|e| corrupt(archive, e))?;
    let mut buf = vec![0u8; 1 << 16];
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(archive, e))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let unsafe_entry = |reason: &str| Error::UnsafeArchiveEntry {
            archive: archive.to_owned(),
            entry: shown.clone(),
            reason: reason.to_owned(),
        };
        let path = entry.path().map_err(|e| corrupt(archive, e))?.into_owned();
        let rel = safe_relative(&path).map_err(unsafe_entry)?;
        let kind = entry.header().entry_type();
        let is_dir = kind.is_dir();
        if !(is_dir || kind.is_file()) {
            if kind.is_pax_global_extensions()
                || kind.is_pax_local_extensions()
                || kind.is_gnu_longname()
            {
                continue;
            }
            return Err(unsafe_entry(if kind.is_symlink() || kind.is_hard_link() {
                "links are not extracted"
            } else {
                "not a regular file or directory"
            }));
        }
        if rel.as_os_str().is_empty() || !selection.wants(&rel, is_dir) {
            continue;
        }
        let target = tmp.path.join(&rel);
        if is_dir {
            fs::create_dir_all(&target).map_err(|e| Error::io("create directory", &target, e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
        }
        let mut out = File::create(&target).map_err(|e| Error::io("create", &target, e))?;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(corrupt(
                        archive,
                        format!("while reading entry {shown:?}: {e}"),
                    ));
                }
            };
            out.write_all(buf.get(..n).unwrap_or_default())
                .map_err(|e| Error::io("write", &target, e))?;
        }
    }
    // Read the rest of the xz stream so its integrity check (at the end) is verified too.
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| corrupt(archive, e))?;

    let mut names = Vec::new();
    for item in fs::read_dir(&tmp.path).map_err(|e| Error::io("read directory", &tmp.path, e))? {
        let item = item.map_err(|e| Error::io("read directory", &tmp.path, e))?;
        names.push(item.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    if let Selection::TopLevel(wanted) = selection {
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !names.contains(w))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingInArchive {
                archive: archive.to_owned(),
                missing,
            });
        }
    }
    if names.is_empty() {
        return Err(corrupt(archive, "no entries"));
    }
    place(&tmp.path, dest, &names)?;
    Ok(names)
}

/// Renames each extracted top-level item into `dest`, replacing what is there.
fn place(tmp: &Path, dest: &Path, names: &[String]) -> Result<()> {
    let mut old = TempDir {
        path: unique_temp(dest, "replaced"),
        keep: false,
    };
    let result = place_all(tmp, dest, names, &old.path);
    if result.is_err() {
        // Keep whatever was moved aside so nothing the user had is lost.
        old.keep = true;
    }
    result
}

fn place_all(tmp: &Path, dest: &Path, names: &[String], old: &Path) -> Result<()> {
    for name in names {
        let from = tmp.join(name);
        let to = dest.join(name);
        if fs::symlink_metadata(&to).is_ok() {
            if !old.exists() {
                fs::create_dir(old).map_err(|e| Error::io("create directory", old, e))?;
            }
            let aside = old.join(name);
            fs::rename(&to, &aside)
                .map_err(|e| Error::io(format!("move {} aside to", to.display()), &aside, e))?;
        }
        fs::rename(&from, &to)
            .map_err(|e| Error::io(format!("rename {} to", from.display()), &to, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            safe_relative(Path::new("./a/b")).unwrap(),
            PathBuf::from("a/b")
        );
        assert!(safe_relative(Path::new("a/../../b")).is_err());
        assert!(safe_relative(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn selection_keeps_top_level_files() {
        let sel = Selection::TopLevel(["bottle".to_owned()].into());
        assert!(sel.wants(Path::new("bottle/train/good/000.png"), false));
        assert!(sel.wants(Path::new("license.txt"), false));
        assert!(!sel.wants(Path::new("cable/x.png"), false));
        assert!(!sel.wants(Path::new("cable"), true));
    }
}
