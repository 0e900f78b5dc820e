//! The ImageNet-pretrained check of downloaded weights.
//!
//! A checksum proves that the bytes are the published ones, not that the published
//! network was trained (the ONNX Model Zoo export scripts take a `pretrained` flag). After
//! the checksum, `download weights` runs
//! `cargo run --release -p gaussad -- check-pretrained --backbone B --weights FILE --json FILE.pretrained.json`
//! from the workspace root (xtask itself does not depend on the network code, so that
//! `download mvtec` stays light): the backbone classifies two bundled photos (a cat, an
//! espresso) and must rank the right classes in its top 5.
//!
//! The file only gets its final name when the check passes, and the JSON report is kept
//! beside it as `<file>.pretrained.json` (a later run that finds both, with the same
//! SHA-256, does not check again). A file that fails is kept as `<name>.unverified.onnx`
//! (never deleted: the download was paid for) and the command fails;
//! `--skip-pretrained-check` installs without the check, loudly.
//!
//! The checker is a trait so that tests can replace the real one (which needs cargo and
//! builds gaussad) with a stub.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// What the check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The weights classify the photos correctly.
    Passed,
    /// They do not.
    Failed,
}

/// Runs the pretrained check of a weights file.
pub trait PretrainedChecker {
    /// Checks `weights` as backbone `backbone`, writing the JSON report to `report`.
    /// `Ok(verdict)` when the check ran (its report written); `Err` when it could not run.
    fn check(&self, backbone: &str, weights: &Path, report: &Path) -> Result<Verdict>;
}

/// The real checker: `cargo run --release -p gaussad -- check-pretrained ...` in the
/// workspace root. Build output and the check's top-5 listing go to the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoChecker {
    /// The cargo executable (`$CARGO` when run through cargo, else `cargo`).
    pub cargo: OsString,
    /// The workspace root (where the command runs).
    pub root: PathBuf,
}

impl Default for CargoChecker {
    fn default() -> Self {
        Self {
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")),
            root: crate::cli::workspace_root(),
        }
    }
}

impl CargoChecker {
    /// The command that checks `weights` and writes its report to `report`.
    pub fn command(&self, backbone: &str, weights: &Path, report: &Path) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.root)
            .args([
                "run",
                "--release",
                "-p",
                "gaussad",
                "--",
                "check-pretrained",
            ])
            .arg("--backbone")
            .arg(backbone)
            .arg("--weights")
            .arg(weights)
            .arg("--json")
            .arg(report);
        cmd
    }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl PretrainedChecker for CargoChecker {
    fn check(&self, backbone: &str, weights: &Path, report: &Path) -> Result<Verdict> {
        let mut cmd = self.command(backbone, weights, report);
        let command = describe(&cmd);
        let failed = |detail: String| Error::PretrainedCheckFailed {
            file: weights.to_owned(),
            command: command.clone(),
            detail,
        };
        remove_if_exists(report)?;
        let status = cmd
            .status()
            .map_err(|e| failed(format!("cannot start cargo: {e}")))?;
        // The report decides; without one the check did not run (build error, bad file).
        match read_report(report) {
            Ok(r) if r.passed && status.success() => Ok(Verdict::Passed),
            Ok(r) if !r.passed => Ok(Verdict::Failed),
            Ok(_) => Err(failed(format!(
                "the report says passed but the command exited with {status}"
            ))),
            Err(e) => Err(failed(format!("{status}, and no report was written ({e})"))),
        }
    }
}

/// What xtask reads from a check's JSON report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// Whether the check passed.
    pub passed: bool,
    /// SHA-256 of the weights that were checked.
    pub weights_sha256: String,
}

/// Reads `passed` and `weights_sha256` from a report written by `gaussad check-pretrained --json`.
pub fn read_report(path: &Path) -> std::result::Result<ReportSummary, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let passed = v
        .get("passed")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| format!("{}: no boolean `passed`", path.display()))?;
    let weights_sha256 = v
        .get("weights_sha256")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("{}: no `weights_sha256`", path.display()))?
        .to_owned();
    Ok(ReportSummary {
        passed,
        weights_sha256,
    })
}

/// `<file>.pretrained.json`: the report kept beside a checked file.
pub fn report_path(weights: &Path) -> PathBuf {
    let mut s = weights.as_os_str().to_owned();
    s.push(".pretrained.json");
    PathBuf::from(s)
}

/// `<dir>/<stem>.<tag>.<ext>` beside `dest` (e.g. `resnet18_Opset16.unverified.onnx`).
pub fn tagged_path(dest: &Path, tag: &str) -> PathBuf {
    let stem = dest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match dest.extension() {
        Some(ext) => format!("{stem}.{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{tag}"),
    };
    dest.with_file_name(name)
}

/// Where a file that failed the check is kept: `<stem>.unverified.<ext>`.
pub fn unverified_path(dest: &Path) -> PathBuf {
    tagged_path(dest, "unverified")
}

/// Where a verified download waits for its check: `<stem>.unchecked.<ext>`.
pub fn unchecked_path(dest: &Path) -> PathBuf {
    tagged_path(dest, "unchecked")
}

/// Whether `dest` has a report beside it that passed for exactly `sha256`.
pub fn already_checked(dest: &Path, sha256: &str) -> bool {
    dest.is_file()
        && read_report(&report_path(dest)).is_ok_and(|r| r.passed && r.weights_sha256 == sha256)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    if from == to {
        return Ok(());
    }
    fs::rename(from, to).map_err(|e| Error::io(format!("rename {} to", from.display()), to, e))
}

/// Checks the checksum-verified file `staged` and installs it as `dest` when it passes
/// (with its report as `<dest>.pretrained.json`). On failure `staged` is renamed to
/// `<dest stem>.unverified.<ext>` (report beside it) and [`Error::NotPretrained`] is
/// returned; when the check cannot run, `staged` stays where it is and the error says so.
/// `staged` may be `dest` itself (a file installed earlier without a report).
pub fn check_and_install(
    checker: &dyn PretrainedChecker,
    backbone: &str,
    staged: &Path,
    dest: &Path,
) -> Result<PathBuf> {
    let staged_report = report_path(staged);
    match checker.check(backbone, staged, &staged_report)? {
        Verdict::Passed => {
            rename(staged, dest)?;
            rename(&staged_report, &report_path(dest))?;
            Ok(dest.to_owned())
        }
        Verdict::Failed => {
            let kept = unverified_path(dest);
            rename(staged, &kept)?;
            let report = report_path(&kept);
            if staged_report.is_file() {
                rename(&staged_report, &report)?;
            }
            Err(Error::NotPretrained {
                backbone: backbone.to_owned(),
                kept,
                report,
            })
        }
    }
}
