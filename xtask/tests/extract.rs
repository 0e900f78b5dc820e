//! `.tar.xz` extraction: selection, atomic placement, corrupt archives, unsafe entries.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use xtask::Error;
use xtask::extract::{Selection, extract_tar_xz};

/// A tar entry for the fixtures: (path as stored, contents; `None` = directory).
type Entry<'a> = (&'a str, Option<&'a [u8]>);

fn header_for(path: &str, size: usize, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    // Write the name bytes directly: `set_path` would refuse the unsafe names we need.
    let name = &mut h.as_old_mut().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_size(size as u64);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_cksum();
    h
}

fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        match data {
            Some(d) => b.append(&header_for(path, d.len(), false), *d).unwrap(),
            None => b.append(&header_for(path, 0, true), &[][..]).unwrap(),
        }
    }
    b.into_inner().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn write_archive(dir: &Path, entries: &[Entry]) -> PathBuf {
    let p = dir.join("a.tar.xz");
    fs::write(&p, xz(&tar_bytes(entries))).unwrap();
    p
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mvtec_like() -> Vec<Entry<'static>> {
    vec![
        ("./license.txt", Some(b"CC BY-NC-SA 4.0")),
        ("bottle/", None),
        ("bottle/train/good/000.png", Some(b"png-bottle-0")),
        ("bottle/test/broken_large/000.png", Some(b"png-bottle-1")),
        ("cable/train/good/000.png", Some(b"png-cable-0")),
    ]
}

#[test]
fn extracts_everything() {
    let dir = tempfile::tempdir().unwrap();
    let archive = write_archive(dir.path(), &mvtec_like());
    let dest = dir.path().join("out");
    let names = extract_tar_xz(&archive, &dest, &Selection::All).unwrap();
    assert_eq!(names, vec!["bottle", "cable", "license.txt"]);
    assert_eq!(
        fs::read(dest.join("bottle/test/broken_large/000.png")).unwrap(),
        b"png-bottle-1"
    );
    assert_eq!(
        fs::read(dest.join("cable/train/good/000.png")).unwrap(),
        b"png-cable-0"
    );
    assert_eq!(
        names_in(&dest),
        vec!["bottle", "cable", "license.txt"],
        "no temporary directory left"
    );
}

#[test]
fn extracts_only_selected_categories_and_replaces_existing() {
    let dir = tempfile::tempdir().unwrap();
    let archive = write_archive(dir.path(), &mvtec_like());
    let dest = dir.path().join("out");
    fs::create_dir_all(dest.join("cable/old")).unwrap();
    let sel = Selection::TopLevel(["cable".to_owned()].into());
    let names = extract_tar_xz(&archive, &dest, &sel).unwrap();
    assert_eq!(names, vec!["cable", "license.txt"]);
    assert_eq!(names_in(&dest), vec!["cable", "license.txt"]);
    assert_eq!(
        names_in(&dest.join("cable")),
        vec!["train"],
        "the old folder was replaced"
    );
}

#[test]
fn missing_category_places_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let archive = write_archive(dir.path(), &mvtec_like());
    let dest = dir.path().join("out");
    let sel = Selection::TopLevel(["bottle".to_owned(), "zipper".to_owned()].into());
    let err = extract_tar_xz(&archive, &dest, &sel).unwrap_err();
    assert!(
        matches!(err, Error::MissingInArchive { ref missing, .. } if missing == &["zipper"]),
        "{err:?}"
    );
    assert!(names_in(&dest).is_empty());
}

#[test]
fn corrupt_xz_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    // Enough incompressible data that the corruption lands inside the compressed blocks.
    let big = common_bytes(200_000);
    let mut data = xz(&tar_bytes(&[
        ("bottle/a.bin", Some(&big)),
        ("cable/b.bin", Some(&big)),
    ]));
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 64] {
        *b ^= 0x5A;
    }
    let archive = dir.path().join("bad.tar.xz");
    fs::write(&archive, &data).unwrap();
    let dest = dir.path().join("out");
    let err = extract_tar_xz(&archive, &dest, &Selection::All).unwrap_err();
    assert!(matches!(err, Error::CorruptArchive { .. }), "{err:?}");
    assert!(err.to_string().starts_with("corrupt archive"), "{err}");
    assert!(
        names_in(&dest).is_empty(),
        "nothing placed, temporary directory removed"
    );
}

#[test]
fn truncated_and_non_xz_archives_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let full = xz(&tar_bytes(&[("bottle/a.bin", Some(&common_bytes(50_000)))]));
    for (name, data) in [
        ("cut.tar.xz", full[..full.len() / 2].to_vec()),
        ("plain.tar.xz", b"not an xz file at all".to_vec()),
    ] {
        let archive = dir.path().join(name);
        fs::write(&archive, data).unwrap();
        let dest = dir.path().join(format!("out-{name}"));
        let err = extract_tar_xz(&archive, &dest, &Selection::All).unwrap_err();
        assert!(
            matches!(err, Error::CorruptArchive { .. }),
            "{name}: {err:?}"
        );
        assert!(names_in(&dest).is_empty());
    }
}

#[test]
fn path_traversal_is_rejected() {
    for evil in [
        "../evil.txt",
        "bottle/../../evil.txt",
        "/tmp/xtask-evil-absolute.txt",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let archive = write_archive(
            dir.path(),
            &[
                ("bottle/train/good/000.png", Some(b"ok")),
                (evil, Some(b"pwned")),
            ],
        );
        let dest = dir.path().join("nested").join("out");
        let err = extract_tar_xz(&archive, &dest, &Selection::All).unwrap_err();
        assert!(
            matches!(err, Error::UnsafeArchiveEntry { ref entry, .. } if entry == evil),
            "{evil}: {err:?}"
        );
        assert!(err.to_string().contains(evil), "{err}");
        assert!(
            names_in(&dest).is_empty(),
            "not even the safe entry before it is placed"
        );
        assert!(!dir.path().join("nested").join("evil.txt").exists());
        assert!(!dir.path().join("evil.txt").exists());
    }
    assert!(!Path::new("/tmp/xtask-evil-absolute.txt").exists());
}

#[test]
fn links_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bottle/link", "/etc/passwd").unwrap();
    let archive = dir.path().join("l.tar.xz");
    fs::write(&archive, xz(&b.into_inner().unwrap())).unwrap();
    let dest = dir.path().join("out");
    let err = extract_tar_xz(&archive, &dest, &Selection::All).unwrap_err();
    assert!(matches!(err, Error::UnsafeArchiveEntry { .. }), "{err:?}");
    assert!(names_in(&dest).is_empty());
}

fn common_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
