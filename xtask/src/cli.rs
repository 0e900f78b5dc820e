//! Command-line interface: `cargo xtask download weights|mvtec`, `cargo xtask list`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::extract::{Selection, extract_tar_xz};
use crate::fetch::{
    Expected, FetchOptions, FetchReport, Outcome, download, import_file, parse_sha256, verify_file,
};
use crate::pretrained::{
    CargoChecker, PretrainedChecker, already_checked, check_and_install, unchecked_path,
    unverified_path,
};
use crate::registry::{self, Artifact, MVTEC_CATEGORIES};

/// Project automation for gaussad.
#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    about = "Project automation for gaussad (downloads with integrity checks)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download a file and verify its SHA-256 (resumable).
    #[command(subcommand)]
    Download(Download),
    /// Print the table of known downloads (URL, size, SHA-256, where the checksum comes from).
    List,
    /// Run an ablation grid: forwards every argument to `cargo run --release -p gaussad --
    /// ablate ...` (`cargo xtask ablate --help` lists them; see docs/ABLATIONS.md).
    #[command(disable_help_flag = true)]
    Ablate {
        /// Arguments of `gaussad ablate`, forwarded unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
}

/// What to download.
#[derive(Debug, Subcommand)]
pub enum Download {
    /// Backbone weights (efficientnet_pytorch, ONNX Model Zoo or torchvision).
    Weights(WeightsArgs),
    /// The MVTec AD dataset (the full archive; extracts all or some categories).
    Mvtec(MvtecArgs),
}

/// Backbones that can be downloaded (their names as gaussad spells them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backbone {
    /// EfficientNet-B0 (efficientnet_pytorch, `efficientnet-b0-355c32eb.pth`).
    #[value(name = "efficientnet-b0")]
    EfficientNetB0,
    /// EfficientNet-B1 (efficientnet_pytorch).
    #[value(name = "efficientnet-b1")]
    EfficientNetB1,
    /// EfficientNet-B2 (efficientnet_pytorch).
    #[value(name = "efficientnet-b2")]
    EfficientNetB2,
    /// EfficientNet-B3 (efficientnet_pytorch).
    #[value(name = "efficientnet-b3")]
    EfficientNetB3,
    /// EfficientNet-B4, the paper's weights (efficientnet_pytorch, `efficientnet-b4-6ed6700e.pth`).
    #[value(name = "efficientnet-b4")]
    EfficientNetB4,
    /// EfficientNet-B5 (efficientnet_pytorch).
    #[value(name = "efficientnet-b5")]
    EfficientNetB5,
    /// EfficientNet-B6 (efficientnet_pytorch).
    #[value(name = "efficientnet-b6")]
    EfficientNetB6,
    /// EfficientNet-B7 (efficientnet_pytorch).
    #[value(name = "efficientnet-b7")]
    EfficientNetB7,
    /// EfficientNet-B4 of timm (ONNX Model Zoo, `efficientnet_b4_Opset16.onnx`).
    #[value(name = "efficientnet-b4-timm")]
    EfficientNetB4Timm,
    /// ResNet-18 (ONNX Model Zoo `resnet18_Opset16.onnx`, or torchvision's `.pth`).
    #[value(name = "resnet18")]
    Resnet18,
}

impl Backbone {
    /// The backbone's name as gaussad spells it (also its folder under `weights/`).
    pub fn name(self) -> &'static str {
        match self {
            Backbone::EfficientNetB0 => "efficientnet-b0",
            Backbone::EfficientNetB1 => "efficientnet-b1",
            Backbone::EfficientNetB2 => "efficientnet-b2",
            Backbone::EfficientNetB3 => "efficientnet-b3",
            Backbone::EfficientNetB4 => "efficientnet-b4",
            Backbone::EfficientNetB5 => "efficientnet-b5",
            Backbone::EfficientNetB6 => "efficientnet-b6",
            Backbone::EfficientNetB7 => "efficientnet-b7",
            Backbone::EfficientNetB4Timm => "efficientnet-b4-timm",
            Backbone::Resnet18 => "resnet18",
        }
    }

    /// The publisher a plain `download weights --backbone B` fetches from.
    pub fn default_provider(self) -> WeightsProvider {
        match self {
            Backbone::EfficientNetB4Timm | Backbone::Resnet18 => WeightsProvider::OnnxZoo,
            _ => WeightsProvider::EfficientnetPytorch,
        }
    }

    /// The registry entry of this backbone from `source` (its default publisher when `None`).
    pub fn artifact_from(self, source: Option<WeightsProvider>) -> Result<&'static Artifact> {
        use Backbone as B;
        use WeightsProvider as P;
        let source = source.unwrap_or_else(|| self.default_provider());
        let effnet = |n: usize| registry::EFFICIENTNET_PYTORCH.get(n);
        let found = match (self, source) {
            (B::EfficientNetB0, P::EfficientnetPytorch) => effnet(0),
            (B::EfficientNetB1, P::EfficientnetPytorch) => effnet(1),
            (B::EfficientNetB2, P::EfficientnetPytorch) => effnet(2),
            (B::EfficientNetB3, P::EfficientnetPytorch) => effnet(3),
            (B::EfficientNetB4, P::EfficientnetPytorch) => effnet(4),
            (B::EfficientNetB5, P::EfficientnetPytorch) => effnet(5),
            (B::EfficientNetB6, P::EfficientnetPytorch) => effnet(6),
            (B::EfficientNetB7, P::EfficientnetPytorch) => effnet(7),
            (B::EfficientNetB4Timm, P::OnnxZoo) => Some(&registry::EFFICIENTNET_B4_TIMM),
            (B::Resnet18, P::OnnxZoo) => Some(&registry::RESNET18),
            (B::Resnet18, P::Torchvision) => Some(&registry::RESNET18_TORCHVISION),
            _ => None,
        };
        found.ok_or_else(|| Error::NoSuchSource {
            backbone: self.name().to_owned(),
            source_name: source
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_owned()),
            reason: match (self, source) {
                (B::EfficientNetB4, P::OnnxZoo) => "the ONNX Model Zoo's EfficientNet-B4 is timm's (symmetric padding, another training): it is backbone `efficientnet-b4-timm`".to_owned(),
                (_, P::Torchvision) => "torchvision's EfficientNet layout (`features.N...`) is not supported by the backbone crate".to_owned(),
                _ => format!("not published there; the default source of {} is {}", self.name(), self.default_provider().to_possible_value().map_or_else(String::new, |v| v.get_name().to_owned())),
            },
        })
    }
}

/// Where `download weights` fetches from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WeightsProvider {
    /// efficientnet_pytorch's release files (`.pth`; only an 8-hex SHA-256 prefix known):
    /// EfficientNet-B0..B7, the default for them.
    #[value(name = "efficientnet-pytorch")]
    EfficientnetPytorch,
    /// The ONNX Model Zoo export (full SHA-256 known): `efficientnet-b4-timm` and
    /// `resnet18`, the default for them.
    #[value(name = "onnx-zoo")]
    OnnxZoo,
    /// torchvision's published `.pth` state dict (only an 8-hex SHA-256 prefix known);
    /// ResNet-18 only.
    #[value(name = "torchvision")]
    Torchvision,
}

/// Options shared by every download.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// Destination directory.
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Fetch from this base URL instead of the official one (the file name is appended).
    #[arg(long, value_name = "URL", conflicts_with = "from")]
    pub mirror: Option<String>,
    /// Use this local file instead of downloading (still checksum-verified).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Expect this SHA-256 instead of the registry's (the registry's size is then not checked).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Accept a file for which no checksum is known (only has an effect then).
    #[arg(long)]
    pub trust_unverified: bool,
    /// No progress bar, no notes.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `download weights` options.
#[derive(Debug, Clone, Args)]
pub struct WeightsArgs {
    /// Which backbone.
    #[arg(long, value_enum)]
    pub backbone: Backbone,
    /// Install without the ImageNet-pretrained check (which classifies two bundled photos
    /// with the downloaded network through `cargo run -p gaussad -- check-pretrained`).
    #[arg(long)]
    pub skip_pretrained_check: bool,
    /// Which publisher's file: `efficientnet-pytorch` (default for efficientnet-b0..b7),
    /// `onnx-zoo` (default for efficientnet-b4-timm and resnet18; full SHA-256 known) or
    /// `torchvision` (a `.pth` state dict, ResNet-18 only). efficientnet_pytorch and
    /// torchvision publish only an 8-hex SHA-256 prefix.
    #[arg(long = "source", value_enum)]
    pub provider: Option<WeightsProvider>,
    /// Source and verification options.
    #[command(flatten)]
    pub source: SourceArgs,
}

/// `download mvtec` options.
#[derive(Debug, Clone, Args)]
pub struct MvtecArgs {
    /// Extract only this category (repeatable; default: all fifteen).
    #[arg(long = "category", value_name = "C")]
    pub categories: Vec<String>,
    /// Extract again even where a category folder already exists (it is replaced).
    #[arg(long)]
    pub force: bool,
    /// Delete the downloaded archive after a successful extraction (never a `--from` file).
    #[arg(long)]
    pub delete_archive: bool,
    /// Source and verification options.
    #[command(flatten)]
    pub source: SourceArgs,
}

/// The workspace root (the parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// What a file must be: the `--sha256` given, else the registry's checksum and size; an
/// artifact without a known checksum needs `--sha256` or `--trust-unverified`.
pub fn resolve_expected(
    artifact: &Artifact,
    sha256: Option<&str>,
    trust_unverified: bool,
) -> Result<Expected> {
    match (sha256, artifact.sha256) {
        (Some(given), known) => {
            let given = parse_sha256(given)?;
            let size = if known == Some(given.as_str()) {
                artifact.size
            } else {
                None
            };
            Ok(Expected {
                sha256: Some(given),
                size,
            })
        }
        (None, Some(known)) => Expected::sha256(known, artifact.size),
        // Only a prefix is published (torchvision): the content is checked against it after
        // the transfer (`check_prefix`), then by the pretrained check.
        (None, None) if trust_unverified || artifact.sha256_prefix.is_some() => Ok(Expected {
            sha256: None,
            size: artifact.size,
        }),
        (None, None) => Err(Error::Unverified {
            artifact: artifact.name.to_owned(),
        }),
    }
}

/// Checks category names against MVTec AD's; empty means all fifteen.
pub fn resolve_categories(names: &[String]) -> Result<BTreeSet<String>> {
    if names.is_empty() {
        return Ok(MVTEC_CATEGORIES.iter().map(|c| (*c).to_owned()).collect());
    }
    names
        .iter()
        .map(|n| {
            if MVTEC_CATEGORIES.contains(&n.as_str()) {
                Ok(n.clone())
            } else {
                Err(Error::UnknownCategory {
                    name: n.clone(),
                    known: MVTEC_CATEGORIES.join(", "),
                })
            }
        })
        .collect()
}

fn fetch(
    artifact: &Artifact,
    src: &SourceArgs,
    dest: &Path,
    expected: &Expected,
) -> Result<FetchReport> {
    let opts = FetchOptions { quiet: src.quiet };
    match &src.from {
        Some(file) => import_file(file, dest, expected, opts),
        None => {
            let url = artifact.url(src.mirror.as_deref());
            if !src.quiet {
                eprintln!("downloading {} from {url}", artifact.name);
            }
            download(&url, dest, expected, opts)
        }
    }
}

fn describe(report: &FetchReport) -> &'static str {
    match report.outcome {
        Outcome::AlreadyPresent => "already present",
        Outcome::Downloaded { resumed_from: 0 } => "downloaded",
        Outcome::Downloaded { .. } => "downloaded (resumed)",
        Outcome::Copied => "copied",
    }
}

/// `download weights`: returns the verified, installed file. After the checksum the
/// ImageNet-pretrained check runs through the gaussad binary ([`CargoChecker`]); see
/// [`download_weights_with`].
pub fn download_weights(args: &WeightsArgs) -> Result<FetchReport> {
    download_weights_with(args, &CargoChecker::default())
}

/// `download weights` with a given pretrained checker.
///
/// The file is fetched (checksum-verified) as `<stem>.unchecked.onnx`, checked, and only
/// then renamed to its final name, with the check's report as
/// `<file>.pretrained.json`. A file that fails the check is kept as
/// `<stem>.unverified.onnx` and [`Error::NotPretrained`] is returned. A final file that
/// is already there, verifies and has a passing report for its SHA-256 is left alone;
/// one without such a report (installed by an older xtask) is checked in place.
/// With `--skip-pretrained-check` nothing is checked (a warning says so, even with
/// `--quiet`), and a file kept earlier as `.unverified.onnx` is installed without a new
/// download.
pub fn download_weights_with(
    args: &WeightsArgs,
    checker: &dyn PretrainedChecker,
) -> Result<FetchReport> {
    download_artifact_with(args.backbone.artifact_from(args.provider)?, args, checker)
}

/// [`download_weights_with`] for a given registry entry (instead of the one of
/// `args.backbone` and `args.provider`), installed as backbone `args.backbone`.
pub fn download_artifact_with(
    artifact: &Artifact,
    args: &WeightsArgs,
    checker: &dyn PretrainedChecker,
) -> Result<FetchReport> {
    let name = args.backbone.name();
    let expected = resolve_expected(
        artifact,
        args.source.sha256.as_deref(),
        args.source.trust_unverified,
    )?;
    let dest_dir = args
        .source
        .dest
        .clone()
        .unwrap_or_else(|| workspace_root().join("weights").join(name));
    let dest = dest_dir.join(artifact.file_name);
    if args.skip_pretrained_check {
        let kept = unverified_path(&dest);
        let report = if !dest.is_file() && kept.is_file() {
            let (sha256, size) = verify_file(&kept, &expected)?;
            check_prefix(artifact, &kept, &sha256)?;
            std::fs::rename(&kept, &dest)
                .map_err(|e| Error::io(format!("rename {} to", kept.display()), &dest, e))?;
            FetchReport {
                path: dest.clone(),
                sha256,
                size,
                outcome: Outcome::AlreadyPresent,
            }
        } else {
            let report = fetch(artifact, &args.source, &dest, &expected)?;
            check_prefix(artifact, &report.path, &report.sha256)?;
            report
        };
        eprintln!(
            "WARNING: {} was installed WITHOUT the ImageNet-pretrained check (--skip-pretrained-check): its checksum is verified, but nothing shows that these weights are trained",
            report.path.display()
        );
        return Ok(report);
    }
    if dest.is_file()
        && let Ok((sha256, size)) = verify_file(&dest, &expected)
        && check_prefix(artifact, &dest, &sha256).is_ok()
    {
        let report = FetchReport {
            path: dest.clone(),
            sha256,
            size,
            outcome: Outcome::AlreadyPresent,
        };
        if already_checked(&dest, &report.sha256) {
            return Ok(report);
        }
        if !args.source.quiet {
            eprintln!(
                "{} has no passing pretrained-check report; checking it now",
                dest.display()
            );
        }
        check_and_install(checker, name, &dest, &dest)?;
        return Ok(report);
    }
    let staged = unchecked_path(&dest);
    let mut report = fetch(artifact, &args.source, &staged, &expected)?;
    check_prefix(artifact, &staged, &report.sha256)?;
    if !args.source.quiet {
        eprintln!(
            "checksum OK; checking that the weights are ImageNet-pretrained (cargo run --release -p gaussad -- check-pretrained; the first build takes a few minutes)"
        );
    }
    report.path = check_and_install(checker, name, &staged, &dest)?;
    Ok(report)
}

/// For an artifact with only a known SHA-256 prefix (torchvision): checks it; a file that
/// fails is deleted (it is the wrong or a corrupt file) and the error names both.
pub fn check_prefix(artifact: &Artifact, path: &Path, sha256: &str) -> Result<()> {
    match artifact.sha256_prefix {
        Some(prefix) if !sha256.starts_with(prefix) => {
            let _ = std::fs::remove_file(path);
            Err(Error::ChecksumMismatch {
                file: path.to_owned(),
                expected: format!("{prefix}... (prefix published in the file name)"),
                got: sha256.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// The result of `download mvtec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MvtecReport {
    /// The dataset root (holding one folder per category).
    pub root: PathBuf,
    /// Top-level items extracted now (categories and licence/readme files).
    pub extracted: Vec<String>,
    /// Categories asked for that were already present and were left alone.
    pub skipped: Vec<String>,
    /// The verified archive, if one was fetched or given (`None` when nothing was needed,
    /// or when it was deleted with `--delete-archive`).
    pub archive: Option<FetchReport>,
}

/// `download mvtec`: fetches the archive when needed and extracts the missing categories.
pub fn download_mvtec(args: &MvtecArgs) -> Result<MvtecReport> {
    let artifact = &registry::MVTEC_AD;
    let wanted = resolve_categories(&args.categories)?;
    let expected = resolve_expected(
        artifact,
        args.source.sha256.as_deref(),
        args.source.trust_unverified,
    )?;
    let root = args
        .source
        .dest
        .clone()
        .unwrap_or_else(|| workspace_root().join("datasets").join("mvtec_ad"));
    let (skipped, missing): (Vec<String>, Vec<String>) = wanted
        .into_iter()
        .partition(|c| !args.force && root.join(c).is_dir());
    if missing.is_empty() {
        return Ok(MvtecReport {
            root,
            extracted: Vec::new(),
            skipped,
            archive: None,
        });
    }
    let archive = match &args.source.from {
        // A local archive is verified in place and extracted from there (no 5 GB copy).
        Some(file) => {
            let (sha256, size) = verify_file(file, &expected)?;
            FetchReport {
                path: file.clone(),
                sha256,
                size,
                outcome: Outcome::Copied,
            }
        }
        None => fetch(
            artifact,
            &args.source,
            &root.join(artifact.file_name),
            &expected,
        )?,
    };
    if !args.source.quiet {
        eprintln!("extracting {} into {}", missing.join(", "), root.display());
    }
    let extracted = extract_tar_xz(
        &archive.path,
        &root,
        &Selection::TopLevel(missing.into_iter().collect()),
    )?;
    let archive = if args.delete_archive && args.source.from.is_none() {
        std::fs::remove_file(&archive.path).map_err(|e| Error::io("remove", &archive.path, e))?;
        None
    } else {
        Some(archive)
    };
    Ok(MvtecReport {
        root,
        extracted,
        skipped,
        archive,
    })
}

/// Runs a parsed command line, printing a summary on stdout.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ablate { args } => {
            // `main` forwards ablate itself (to pass the exit status on); a library caller
            // gets the child's failure as this process's exit status.
            if crate::ablate::forward(&args) != std::process::ExitCode::SUCCESS {
                std::process::exit(1);
            }
        }
        Command::List => {
            for a in registry::ARTIFACTS {
                println!("{}", a.name);
                println!("  url:      {}", a.url(None));
                println!(
                    "  sha256:   {}",
                    match (a.sha256, a.sha256_prefix) {
                        (Some(h), _) => h.to_owned(),
                        (None, Some(p)) => format!("{p}... (published prefix only; the pretrained check is the real gate)"),
                        (None, None) => "(none confirmed: needs --sha256 or --trust-unverified)".to_owned(),
                    }
                );
                println!(
                    "  size:     {}",
                    a.size
                        .map_or_else(|| "(not published)".to_owned(), |s| format!("{s} bytes"))
                );
                println!("  checksum: {}", a.checksum_source);
                println!("  license:  {}", a.license);
            }
        }
        Command::Download(Download::Weights(args)) => {
            let r = download_weights(&args)?;
            println!(
                "{}: {} (sha256 {}, {} bytes) {}",
                args.backbone.artifact_from(args.provider)?.name,
                r.path.display(),
                r.sha256,
                r.size,
                describe(&r)
            );
        }
        Command::Download(Download::Mvtec(args)) => {
            let r = download_mvtec(&args)?;
            if let Some(a) = &r.archive {
                println!(
                    "archive: {} (sha256 {}, {} bytes) {}",
                    a.path.display(),
                    a.sha256,
                    a.size,
                    describe(a)
                );
            }
            if !r.extracted.is_empty() {
                println!(
                    "extracted into {}: {}",
                    r.root.display(),
                    r.extracted.join(", ")
                );
            }
            if !r.skipped.is_empty() {
                println!(
                    "already present in {} (use --force to replace): {}",
                    r.root.display(),
                    r.skipped.join(", ")
                );
            }
        }
    }
    Ok(())
}
