//! The one error type of xtask.

use std::path::PathBuf;

/// Everything that can go wrong while fetching, verifying or extracting a file.
///
/// Every message names the URL or file concerned; none of these errors ever leaves a
/// partial *final* file behind (a resumable `*.part` file may stay, and the
/// [`Error::Truncated`] message says where).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The HTTP request could not be made or the connection failed before a response.
    #[error("request to {url} failed: {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// What the HTTP client reported.
        message: String,
    },
    /// The server answered with a status that is not a success.
    #[error("server answered HTTP {status} for {url}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The server sent a `206 Partial Content` that does not match the range asked for.
    #[error(
        "server sent an unexpected Content-Range {content_range:?} for {url} (asked for bytes {asked_from}-)"
    )]
    BadContentRange {
        /// The URL requested.
        url: String,
        /// The Content-Range header as received (empty when missing).
        content_range: String,
        /// The first byte asked for.
        asked_from: u64,
    },
    /// The transfer stopped before all bytes arrived. The bytes received are kept in `part`;
    /// running the same command again resumes from there.
    #[error(
        "truncated transfer from {url}: got {got} of {} bytes{detail}; the partial data is kept in {} and the next run resumes from there",
        expected.map_or_else(|| "an unknown number of".to_owned(), |e| e.to_string()),
        part.display()
    )]
    Truncated {
        /// The URL requested.
        url: String,
        /// Bytes of the file now held in `part`.
        got: u64,
        /// Bytes the complete file has, where known.
        expected: Option<u64>,
        /// Extra detail (the I/O error that ended the transfer), with a leading separator, or empty.
        detail: String,
        /// The partial file.
        part: PathBuf,
    },
    /// A file's SHA-256 is not the one expected. A downloaded file with a wrong checksum is deleted.
    #[error("checksum mismatch for {}: expected sha256 {expected}, got {got}", file.display())]
    ChecksumMismatch {
        /// The file checked.
        file: PathBuf,
        /// The expected SHA-256 (lower-case hex).
        expected: String,
        /// The SHA-256 computed (lower-case hex).
        got: String,
    },
    /// The server announced a length that differs from the expected size; nothing was downloaded.
    #[error(
        "server announced {announced} bytes for {url}, expected {expected}; not downloading (wrong file or mirror?)"
    )]
    UnexpectedLength {
        /// The URL requested.
        url: String,
        /// The expected size in bytes.
        expected: u64,
        /// The size announced (Content-Length, or Content-Range's total).
        announced: u64,
    },
    /// A file's size is not the one expected. A downloaded file with a wrong size is deleted.
    #[error("size mismatch for {}: expected {expected} bytes, got {got}", file.display())]
    SizeMismatch {
        /// The file checked.
        file: PathBuf,
        /// The expected size in bytes.
        expected: u64,
        /// The size found.
        got: u64,
    },
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write", "rename ... to", ...).
        action: String,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The archive cannot be decoded (bad xz stream, bad tar header, truncated data).
    #[error("corrupt archive {}: {detail}", archive.display())]
    CorruptArchive {
        /// The archive.
        archive: PathBuf,
        /// What the decoder reported.
        detail: String,
    },
    /// The archive holds an entry that would escape the destination or is not a plain
    /// file or directory. Nothing from the archive is placed at the destination.
    #[error("archive {} holds an unsafe entry {entry:?} ({reason}); nothing was extracted", archive.display())]
    UnsafeArchiveEntry {
        /// The archive.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// Categories asked for are not in the archive.
    #[error("archive {} does not contain the categor{} {}; nothing was extracted", archive.display(), if missing.len() == 1 { "y" } else { "ies" }, missing.join(", "))]
    MissingInArchive {
        /// The archive.
        archive: PathBuf,
        /// The top-level names asked for and not found.
        missing: Vec<String>,
    },
    /// A category name that MVTec AD does not have.
    #[error("unknown MVTec AD category {name:?}; known categories: {known}")]
    UnknownCategory {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// No checksum is known for an artifact and none was given.
    #[error(
        "no verified SHA-256 is known for {artifact}: pass --sha256 HEX with the checksum you trust, or --trust-unverified to accept the file unchecked"
    )]
    Unverified {
        /// The artifact's name.
        artifact: String,
    },
    /// `download weights --source S` for a backbone that S does not publish in a supported form.
    #[error("no {source_name} weights for {backbone}: {reason}")]
    NoSuchSource {
        /// The backbone asked for.
        backbone: String,
        /// The source asked for.
        source_name: String,
        /// Why not.
        reason: String,
    },
    /// The downloaded weights passed the checksum but failed the ImageNet-pretrained check.
    /// The file is kept under `kept` (not installed), with the check's JSON report beside it.
    #[error(
        "{backbone} weights failed the ImageNet-pretrained check (checksum OK: the bytes are the published ones, but the network does not classify the bundled photos of a cat and an espresso as ImageNet-trained weights do); the file is kept as {} (report: {}), not installed. To install it anyway, run the same command with --skip-pretrained-check",
        kept.display(),
        report.display()
    )]
    NotPretrained {
        /// The backbone.
        backbone: String,
        /// Where the rejected file is kept.
        kept: PathBuf,
        /// The check's JSON report.
        report: PathBuf,
    },
    /// The pretrained check could not run (cargo missing, build failure, unreadable file...).
    #[error(
        "the ImageNet-pretrained check of {} could not run ({detail}): `{command}`; the verified file is kept there; fix the problem and run the same command again, or pass --skip-pretrained-check",
        file.display()
    )]
    PretrainedCheckFailed {
        /// The weights file being checked.
        file: PathBuf,
        /// The command that was run.
        command: String,
        /// What went wrong.
        detail: String,
    },
    /// A `--sha256` value that is not 64 hexadecimal digits.
    #[error("invalid SHA-256 {value:?}: expected 64 hexadecimal digits")]
    InvalidSha256 {
        /// The value given.
        value: String,
    },
}

/// Result alias for xtask.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an [`Error::Io`].
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }
}
