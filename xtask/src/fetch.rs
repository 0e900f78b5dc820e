//! Verified, resumable downloads.
//!
//! A download streams into `<file>.part` beside the final file. If it stops early the
//! `.part` file stays and the next call resumes with an HTTP `Range` request; a server
//! that ignores `Range` (answers `200`) makes the download restart cleanly from byte 0.
//! The complete `.part` file is checked (size where known, SHA-256) and only then renamed
//! to the final name, so a final file is never partial or unverified. A `.part` file
//! that fails verification is deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a file must be to be accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// SHA-256, lower-case hex. `None` accepts any content (only after an explicit
    /// `--trust-unverified`).
    pub sha256: Option<String>,
    /// Size in bytes, where known.
    pub size: Option<u64>,
}

impl Expected {
    /// Expects the given checksum (any case; validated) and optional size.
    pub fn sha256(hex: &str, size: Option<u64>) -> Result<Self> {
        Ok(Expected {
            sha256: Some(parse_sha256(hex)?),
            size,
        })
    }
}

/// How a fetch reports progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// No progress bar and no notes on stderr.
    pub quiet: bool,
}

/// How the final file came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The final file was already there and verified; nothing was fetched.
    AlreadyPresent,
    /// Fetched over HTTP (`resumed_from` bytes were already held in the `.part` file).
    Downloaded {
        /// Bytes taken from an earlier partial download.
        resumed_from: u64,
    },
    /// Copied from a local file (`--from`).
    Copied,
}

/// The result of a successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// The final, verified file.
    pub path: PathBuf,
    /// Its SHA-256 (lower-case hex).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// How it came to be.
    pub outcome: Outcome,
}

/// Checks that `value` is 64 hex digits and returns it in lower case.
pub fn parse_sha256(value: &str) -> Result<String> {
    let v = value.trim();
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(Error::InvalidSha256 {
            value: value.to_owned(),
        })
    }
}

/// The partial-download file used for `dest`: `dest` with `.part` appended.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// SHA-256 (lower-case hex) and size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
    }
    let digest = hasher.finalize();
    let hex = digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((hex, total))
}

/// Checks a file against `expected` (size first, then SHA-256); returns its checksum and size.
pub fn verify_file(path: &Path, expected: &Expected) -> Result<(String, u64)> {
    if let Some(size) = expected.size {
        let got = fs::metadata(path)
            .map_err(|e| Error::io("read metadata of", path, e))?
            .len();
        if got != size {
            return Err(Error::SizeMismatch {
                file: path.to_owned(),
                expected: size,
                got,
            });
        }
    }
    let (got, size) = sha256_file(path)?;
    if let Some(want) = &expected.sha256
        && *want != got
    {
        return Err(Error::ChecksumMismatch {
            file: path.to_owned(),
            expected: want.clone(),
            got,
        });
    }
    Ok((got, size))
}

/// Verifies `part` and renames it to `dest`; deletes `part` when it fails verification.
fn promote(part: &Path, dest: &Path, expected: &Expected) -> Result<(String, u64)> {
    match verify_file(part, expected) {
        Ok(v) => {
            fs::rename(part, dest)
                .map_err(|e| Error::io(format!("rename {} to", part.display()), dest, e))?;
            sync_parent(dest);
            Ok(v)
        }
        Err(e) => {
            if matches!(
                e,
                Error::ChecksumMismatch { .. } | Error::SizeMismatch { .. }
            ) {
                let _ = fs::remove_file(part);
            }
            Err(e)
        }
    }
}

/// Best-effort fsync of a file's directory, so a rename survives a crash.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

fn create_parent(dest: &Path) -> Result<()> {
    match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))
        }
        _ => Ok(()),
    }
}

/// Returns `Some(report)` when `dest` already exists and verifies.
fn already_present(
    dest: &Path,
    expected: &Expected,
    opts: FetchOptions,
) -> Result<Option<FetchReport>> {
    if !dest.is_file() {
        return Ok(None);
    }
    match verify_file(dest, expected) {
        Ok((sha256, size)) => Ok(Some(FetchReport {
            path: dest.to_owned(),
            sha256,
            size,
            outcome: Outcome::AlreadyPresent,
        })),
        Err(Error::ChecksumMismatch { .. } | Error::SizeMismatch { .. }) => {
            note(
                opts,
                &format!(
                    "{} exists but does not verify; fetching it again",
                    dest.display()
                ),
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn note(opts: FetchOptions, msg: &str) {
    if !opts.quiet {
        eprintln!("{msg}");
    }
}

fn progress_bar(opts: FetchOptions, total: Option<u64>, start: u64, label: &str) -> ProgressBar {
    if opts.quiet || !io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
    }
    let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(label.to_owned());
    pb.set_position(start);
    pb
}

/// Copies a local file to `dest` after verifying it (`--from FILE`).
///
/// The source is checked first and left untouched; the copy goes to a temporary name
/// beside `dest` and is renamed into place once complete.
pub fn import_file(
    src: &Path,
    dest: &Path,
    expected: &Expected,
    opts: FetchOptions,
) -> Result<FetchReport> {
    if let Some(r) = already_present(dest, expected, opts)? {
        return Ok(r);
    }
    let (sha256, size) = verify_file(src, expected)?;
    create_parent(dest)?;
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(format!(".import-{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let copied =
        fs::copy(src, &tmp).map_err(|e| Error::io(format!("copy {} to", src.display()), &tmp, e));
    let result = copied.and_then(|_| {
        // Re-check the copy: the source could have changed between the check and the copy.
        promote(
            &tmp,
            dest,
            &Expected {
                sha256: Some(sha256.clone()),
                size: Some(size),
            },
        )
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    Ok(FetchReport {
        path: dest.to_owned(),
        sha256,
        size,
        outcome: Outcome::Copied,
    })
}

/// Downloads `url` to `dest`, resuming from `dest.part` where one exists, and verifies it.
///
/// Errors: [`Error::HttpStatus`] for a non-success status, [`Error::Http`] for connection
/// failures, [`Error::UnexpectedLength`] when the server announces another size than the
/// expected one (nothing is written), [`Error::Truncated`] when the transfer stops early
/// (the `.part` file is kept for the next call), [`Error::ChecksumMismatch`] /
/// [`Error::SizeMismatch`] (the `.part` file is deleted). `dest` itself only ever appears
/// complete and verified.
pub fn download(
    url: &str,
    dest: &Path,
    expected: &Expected,
    opts: FetchOptions,
) -> Result<FetchReport> {
    if let Some(r) = already_present(dest, expected, opts)? {
        return Ok(r);
    }
    create_parent(dest)?;
    let part = part_path(dest);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(120))
        .build();
    let label = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut restarted = false;
    let resumed_from;
    loop {
        let mut offset = match fs::metadata(&part) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io("read metadata of", &part, e)),
        };
        if expected.size.is_some_and(|size| offset > size) {
            note(
                opts,
                &format!(
                    "{} is larger than the expected file; starting over",
                    part.display()
                ),
            );
            remove_if_exists(&part)?;
            offset = 0;
        }
        if offset > 0 && expected.size == Some(offset) {
            // Everything is here already: only verification is left.
            resumed_from = offset;
            break;
        }
        let mut req = agent.get(url).set("Accept-Encoding", "identity");
        if offset > 0 {
            note(opts, &format!("resuming {label} at byte {offset}"));
            req = req.set("Range", &format!("bytes={offset}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, _)) if offset > 0 && !restarted => {
                note(
                    opts,
                    &format!("server refused the range for {label}; starting over"),
                );
                remove_if_exists(&part)?;
                restarted = true;
                continue;
            }
            Err(ureq::Error::Status(status, _)) => {
                return Err(Error::HttpStatus {
                    url: url.to_owned(),
                    status,
                });
            }
            Err(e) => {
                return Err(Error::Http {
                    url: url.to_owned(),
                    message: e.to_string(),
                });
            }
        };
        let content_length = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (start, total) = match resp.status() {
            206 => {
                let cr = resp.header("Content-Range").unwrap_or("").to_owned();
                match parse_content_range(&cr) {
                    Some((first, total)) if first == offset && offset > 0 => {
                        (offset, total.or(content_length.map(|l| l + offset)))
                    }
                    _ if !restarted => {
                        note(
                            opts,
                            &format!("unexpected Content-Range {cr:?} for {label}; starting over"),
                        );
                        remove_if_exists(&part)?;
                        restarted = true;
                        continue;
                    }
                    _ => {
                        return Err(Error::BadContentRange {
                            url: url.to_owned(),
                            content_range: cr,
                            asked_from: offset,
                        });
                    }
                }
            }
            200 => {
                if offset > 0 {
                    note(
                        opts,
                        &format!(
                            "server ignored the range request for {label}; starting over from byte 0"
                        ),
                    );
                }
                (0, content_length.or(expected.size))
            }
            status => {
                return Err(Error::HttpStatus {
                    url: url.to_owned(),
                    status,
                });
            }
        };
        if let (Some(want), Some(announced)) = (expected.size, total)
            && want != announced
        {
            // Do not fetch gigabytes of the wrong thing (an HTML error page, another file).
            remove_if_exists(&part)?;
            return Err(Error::UnexpectedLength {
                url: url.to_owned(),
                expected: want,
                announced,
            });
        }
        let mut file = if start == 0 {
            File::create(&part).map_err(|e| Error::io("create", &part, e))?
        } else {
            OpenOptions::new()
                .append(true)
                .open(&part)
                .map_err(|e| Error::io("open", &part, e))?
        };
        let pb = progress_bar(opts, total, start, &label);
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = start;
        let mut read_error = None;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            let chunk = buf.get(..n).unwrap_or_default();
            file.write_all(chunk)
                .map_err(|e| Error::io("write", &part, e))?;
            got += n as u64;
            pb.set_position(got);
        }
        pb.finish_and_clear();
        file.sync_all().map_err(|e| Error::io("write", &part, e))?;
        drop(file);
        let detail = read_error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let short = match total {
            Some(total) => got < total,
            None => read_error.is_some(),
        };
        if short {
            return Err(Error::Truncated {
                url: url.to_owned(),
                got,
                expected: total,
                detail,
                part,
            });
        }
        resumed_from = start;
        break;
    }
    let (sha256, size) = promote(&part, dest, expected)?;
    Ok(FetchReport {
        path: dest.to_owned(),
        sha256,
        size,
        outcome: Outcome::Downloaded { resumed_from },
    })
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Parses `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`) into `(FIRST, Some(TOTAL))`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first = first.trim().parse::<u64>().ok()?;
    let last = last.trim().parse::<u64>().ok()?;
    if last < first {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    Some((first, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
    }

    #[test]
    fn sha256_parsing() {
        let upper = "AB".repeat(32);
        assert_eq!(parse_sha256(&upper).unwrap(), "ab".repeat(32));
        assert!(matches!(
            parse_sha256("abc"),
            Err(Error::InvalidSha256 { .. })
        ));
        assert!(matches!(
            parse_sha256(&"g".repeat(64)),
            Err(Error::InvalidSha256 { .. })
        ));
    }

    #[test]
    fn part_path_appends_suffix() {
        assert_eq!(
            part_path(Path::new("/a/b.onnx")),
            PathBuf::from("/a/b.onnx.part")
        );
    }
}
