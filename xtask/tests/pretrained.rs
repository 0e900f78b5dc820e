//! The pretrained check in `download weights`: command construction, and what happens to
//! the files when the check passes, fails or cannot run (with a stub checker, so no cargo
//! build is needed), against a local mirror.

mod common;

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use common::{Server, bytes, names_in, sha_hex};
use xtask::Error;
use xtask::cli::{Cli, Command, Download, WeightsArgs, download_weights_with};
use xtask::fetch::Outcome;
use xtask::pretrained::{
    CargoChecker, PretrainedChecker, Verdict, read_report, report_path, unchecked_path,
    unverified_path,
};

/// Answers with a fixed verdict (or fails to run), writing a report like gaussad's.
struct Stub {
    verdict: Option<Verdict>,
    calls: RefCell<Vec<(String, PathBuf, PathBuf)>>,
}

impl Stub {
    fn new(verdict: Option<Verdict>) -> Self {
        Stub {
            verdict,
            calls: RefCell::new(Vec::new()),
        }
    }
}

impl PretrainedChecker for Stub {
    fn check(&self, backbone: &str, weights: &Path, report: &Path) -> xtask::Result<Verdict> {
        self.calls
            .borrow_mut()
            .push((backbone.to_owned(), weights.to_owned(), report.to_owned()));
        let Some(v) = self.verdict else {
            return Err(Error::PretrainedCheckFailed {
                file: weights.to_owned(),
                command: "stub".into(),
                detail: "the stub cannot run".into(),
            });
        };
        let sha = sha_hex(&fs::read(weights).unwrap());
        fs::write(
            report,
            format!(
                "{{\"backbone\": \"{backbone}\", \"weights_sha256\": \"{sha}\", \"passed\": {}}}",
                v == Verdict::Passed
            ),
        )
        .unwrap();
        Ok(v)
    }
}

fn weights_args(dest: &Path, server: &Server, sha: &str, extra: &[&str]) -> WeightsArgs {
    let mut args = vec![
        "xtask",
        "download",
        "weights",
        "--backbone",
        "resnet18",
        "--quiet",
        "--dest",
        dest.to_str().unwrap(),
        "--sha256",
        sha,
    ];
    let base = server.base();
    args.extend(["--mirror", &base]);
    args.extend(extra);
    let cli = Cli::try_parse_from(args).unwrap();
    let Command::Download(Download::Weights(w)) = cli.command else {
        panic!("parsed wrong command")
    };
    w
}

#[test]
fn cargo_command_runs_gaussad_check_pretrained_from_the_workspace_root() {
    let c = CargoChecker {
        cargo: "/opt/cargo".into(),
        root: PathBuf::from("/ws"),
    };
    let cmd = c.command(
        "efficientnet-b4",
        Path::new("/w/efficientnet_b4_Opset16.unchecked.onnx"),
        Path::new("/w/efficientnet_b4_Opset16.unchecked.onnx.pretrained.json"),
    );
    assert_eq!(cmd.get_program(), OsStr::new("/opt/cargo"));
    assert_eq!(cmd.get_current_dir(), Some(Path::new("/ws")));
    let args: Vec<&OsStr> = cmd.get_args().collect();
    assert_eq!(
        args,
        [
            "run",
            "--release",
            "-p",
            "gaussad",
            "--",
            "check-pretrained",
            "--backbone",
            "efficientnet-b4",
            "--weights",
            "/w/efficientnet_b4_Opset16.unchecked.onnx",
            "--json",
            "/w/efficientnet_b4_Opset16.unchecked.onnx.pretrained.json",
        ]
        .map(OsStr::new)
    );
    // The default runs in this workspace's root.
    let d = CargoChecker::default();
    assert!(d.root.join("xtask").join("Cargo.toml").is_file());
}

#[test]
fn path_names() {
    let dest = Path::new("/w/resnet18_Opset16.onnx");
    assert_eq!(
        unchecked_path(dest),
        Path::new("/w/resnet18_Opset16.unchecked.onnx")
    );
    assert_eq!(
        unverified_path(dest),
        Path::new("/w/resnet18_Opset16.unverified.onnx")
    );
    assert_eq!(
        report_path(dest),
        Path::new("/w/resnet18_Opset16.onnx.pretrained.json")
    );
}

#[test]
fn accepted_weights_get_their_final_name_and_report_and_are_not_checked_twice() {
    let data = bytes(30_000, 31);
    let server = Server::start(&[("resnet18_Opset16.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let args = weights_args(dir.path(), &server, &sha_hex(&data), &[]);
    let stub = Stub::new(Some(Verdict::Passed));
    let r = download_weights_with(&args, &stub).unwrap();
    let dest = dir.path().join("resnet18_Opset16.onnx");
    assert_eq!(r.path, dest);
    assert_eq!(fs::read(&dest).unwrap(), data);
    // The checker saw the verified file under its temporary name.
    let calls = stub.calls.borrow().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "resnet18");
    assert_eq!(
        calls[0].1,
        dir.path().join("resnet18_Opset16.unchecked.onnx")
    );
    assert_eq!(
        names_in(dir.path()),
        [
            "resnet18_Opset16.onnx",
            "resnet18_Opset16.onnx.pretrained.json"
        ]
    );
    let rep = read_report(&report_path(&dest)).unwrap();
    assert!(rep.passed);
    assert_eq!(rep.weights_sha256, sha_hex(&data));
    // Second run: verified, report matches, no check and no download.
    let requests = server.seen().len();
    let stub2 = Stub::new(None);
    let r = download_weights_with(&args, &stub2).unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyPresent);
    assert!(stub2.calls.borrow().is_empty());
    assert_eq!(server.seen().len(), requests);
}

#[test]
fn rejected_weights_are_kept_as_unverified_and_skip_installs_them_without_a_new_download() {
    let data = bytes(20_000, 32);
    let server = Server::start(&[("resnet18_Opset16.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let sha = sha_hex(&data);
    let args = weights_args(dir.path(), &server, &sha, &[]);
    let err = download_weights_with(&args, &Stub::new(Some(Verdict::Failed))).unwrap_err();
    let kept = dir.path().join("resnet18_Opset16.unverified.onnx");
    match &err {
        Error::NotPretrained {
            kept: k, report, ..
        } => {
            assert_eq!(k, &kept);
            assert_eq!(report, &report_path(&kept));
        }
        e => panic!("{e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("failed the ImageNet-pretrained check")
            && msg.contains("--skip-pretrained-check")
            && msg.contains("resnet18_Opset16.unverified.onnx"),
        "{msg}"
    );
    assert_eq!(
        names_in(dir.path()),
        [
            "resnet18_Opset16.unverified.onnx",
            "resnet18_Opset16.unverified.onnx.pretrained.json"
        ]
    );
    assert_eq!(fs::read(&kept).unwrap(), data);
    assert!(!read_report(&report_path(&kept)).unwrap().passed);

    // --skip-pretrained-check installs the kept file (checksum verified again), no download.
    let requests = server.seen().len();
    let args = weights_args(dir.path(), &server, &sha, &["--skip-pretrained-check"]);
    let stub = Stub::new(None);
    let r = download_weights_with(&args, &stub).unwrap();
    assert_eq!(r.path, dir.path().join("resnet18_Opset16.onnx"));
    assert_eq!(fs::read(&r.path).unwrap(), data);
    assert!(stub.calls.borrow().is_empty());
    assert_eq!(server.seen().len(), requests);
    assert!(!kept.exists());
}

#[test]
fn a_check_that_cannot_run_keeps_the_verified_file_for_the_next_run() {
    let data = bytes(25_000, 33);
    let server = Server::start(&[("resnet18_Opset16.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let args = weights_args(dir.path(), &server, &sha_hex(&data), &[]);
    let err = download_weights_with(&args, &Stub::new(None)).unwrap_err();
    assert!(
        matches!(err, Error::PretrainedCheckFailed { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--skip-pretrained-check"), "{err}");
    assert_eq!(names_in(dir.path()), ["resnet18_Opset16.unchecked.onnx"]);
    // Next run: the staged file verifies (no download) and is checked and installed.
    let requests = server.seen().len();
    let r = download_weights_with(&args, &Stub::new(Some(Verdict::Passed))).unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyPresent);
    assert_eq!(server.seen().len(), requests);
    assert_eq!(
        names_in(dir.path()),
        [
            "resnet18_Opset16.onnx",
            "resnet18_Opset16.onnx.pretrained.json"
        ]
    );
}

#[test]
fn an_installed_file_without_a_report_is_checked_in_place() {
    let data = bytes(5_000, 34);
    let server = Server::start(&[("resnet18_Opset16.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("resnet18_Opset16.onnx");
    fs::write(&dest, &data).unwrap();
    let args = weights_args(dir.path(), &server, &sha_hex(&data), &[]);
    let stub = Stub::new(Some(Verdict::Failed));
    let err = download_weights_with(&args, &stub).unwrap_err();
    assert!(matches!(err, Error::NotPretrained { .. }), "{err:?}");
    assert_eq!(stub.calls.borrow()[0].1, dest);
    assert!(server.seen().is_empty());
    assert_eq!(
        names_in(dir.path()),
        [
            "resnet18_Opset16.unverified.onnx",
            "resnet18_Opset16.unverified.onnx.pretrained.json"
        ]
    );
    // A stale report for other bytes does not count as checked.
    fs::write(&dest, &data).unwrap();
    fs::write(
        report_path(&dest),
        format!(
            "{{\"passed\": true, \"weights_sha256\": \"{}\"}}",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let stub = Stub::new(Some(Verdict::Passed));
    download_weights_with(&args, &stub).unwrap();
    assert_eq!(stub.calls.borrow().len(), 1);
    assert_eq!(
        read_report(&report_path(&dest)).unwrap().weights_sha256,
        sha_hex(&data)
    );
}

/// The real checker's reading of the command's outcome, with a fake `cargo` script.
#[cfg(unix)]
#[test]
fn cargo_checker_reads_the_report_and_exit_status() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.onnx");
    fs::write(&weights, b"w").unwrap();
    let report = dir.path().join("w.onnx.pretrained.json");
    let fake = |body: &str| {
        let p = dir.path().join(format!("cargo-{}", body.len()));
        // Writes `body` to the path after --json (when body is not empty), exits with $1.
        let script = format!(
            "#!/bin/sh\nout=\"\"\nprev=\"\"\nfor a in \"$@\"; do\n  if [ \"$prev\" = \"--json\" ]; then out=\"$a\"; fi\n  prev=\"$a\"\ndone\n[ -n '{body}' ] && printf '%s' '{body}' > \"$out\"\n[ -n '{body}' ] && case '{body}' in *true*) exit 0;; esac\nexit 1\n"
        );
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        CargoChecker {
            cargo: p.into_os_string(),
            root: dir.path().to_owned(),
        }
    };
    let pass = fake(r#"{"passed": true, "weights_sha256": "ab"}"#);
    assert_eq!(
        pass.check("resnet18", &weights, &report).unwrap(),
        Verdict::Passed
    );
    let fail = fake(r#"{"passed": false, "weights_sha256": "ab"}"#);
    assert_eq!(
        fail.check("resnet18", &weights, &report).unwrap(),
        Verdict::Failed
    );
    // No report (a build error, say): the check did not run. A stale report from the
    // run before is removed first, so it cannot be mistaken for this run's.
    let broken = fake("");
    let err = broken.check("resnet18", &weights, &report).unwrap_err();
    assert!(
        matches!(err, Error::PretrainedCheckFailed { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no report was written"), "{err}");
    let missing = CargoChecker {
        cargo: dir.path().join("no-such-cargo").into_os_string(),
        root: dir.path().to_owned(),
    };
    let err = missing.check("resnet18", &weights, &report).unwrap_err();
    assert!(err.to_string().contains("cannot start cargo"), "{err}");
}

fn torchvision_args(dest: &Path, server: &Server, backbone: &str) -> WeightsArgs {
    mirror_args(dest, server, backbone, &["--source", "torchvision"])
}

/// `download weights --backbone B --quiet --dest DEST --mirror SERVER EXTRA...`.
fn mirror_args(dest: &Path, server: &Server, backbone: &str, extra: &[&str]) -> WeightsArgs {
    let base = server.base();
    let mut args = vec![
        "xtask",
        "download",
        "weights",
        "--backbone",
        backbone,
        "--quiet",
        "--dest",
        dest.to_str().unwrap(),
        "--mirror",
        &base,
    ];
    args.extend(extra);
    let cli = Cli::try_parse_from(args).unwrap();
    let Command::Download(Download::Weights(w)) = cli.command else {
        panic!("parsed wrong command")
    };
    w
}

#[test]
fn torchvision_source_fetches_the_pth_and_rejects_content_without_the_published_prefix() {
    // Random bytes cannot have the SHA-256 prefix f37072fd of torchvision's resnet18 file.
    let data = bytes(20_000, 77);
    assert!(!sha_hex(&data).starts_with("f37072fd"));
    let server = Server::start(&[("resnet18-f37072fd.pth", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let args = torchvision_args(dir.path(), &server, "resnet18");
    let stub = Stub::new(Some(Verdict::Passed));
    let err = download_weights_with(&args, &stub).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{msg}");
    assert!(msg.contains("f37072fd") && msg.contains(&sha_hex(&data)), "{msg}");
    // The file was requested under torchvision's name, never checked, and nothing is left.
    assert!(server.seen().iter().any(|r| r.path.contains("resnet18-f37072fd.pth")));
    assert!(stub.calls.borrow().is_empty());
    assert!(names_in(dir.path()).is_empty(), "{:?}", names_in(dir.path()));
}

#[test]
fn torchvision_source_is_refused_for_efficientnet_b4() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let args = torchvision_args(dir.path(), &server, "efficientnet-b4");
    let err = download_weights_with(&args, &Stub::new(Some(Verdict::Passed))).unwrap_err();
    assert!(matches!(err, Error::NoSuchSource { .. }), "{err}");
    assert!(err.to_string().contains("torchvision"));
    assert!(server.seen().is_empty());
}

#[test]
fn sha256_prefix_check_accepts_a_matching_prefix_and_deletes_a_mismatching_file() {
    let data = bytes(5_000, 3);
    let sha = sha_hex(&data);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("net-xxxxxxxx.pth");
    fs::write(&file, &data).unwrap();
    let prefix: &'static str = Box::leak(sha[..8].to_owned().into_boxed_str());
    let good = xtask::registry::Artifact {
        sha256_prefix: Some(prefix),
        ..xtask::registry::RESNET18_TORCHVISION
    };
    xtask::cli::check_prefix(&good, &file, &sha).unwrap();
    assert!(file.is_file());
    let bad = xtask::registry::Artifact {
        sha256_prefix: Some("00000000"),
        ..xtask::registry::RESNET18_TORCHVISION
    };
    if sha.starts_with("00000000") {
        panic!("fixture bytes happen to hash to the bad prefix; change the seed");
    }
    let err = xtask::cli::check_prefix(&bad, &file, &sha).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }));
    assert!(!file.exists(), "a file failing the prefix check is deleted");
}

fn effnet_args(dest: &Path, server: &Server, backbone: &str) -> WeightsArgs {
    mirror_args(dest, server, backbone, &[])
}

#[test]
fn efficientnet_b4_fetches_the_efficientnet_pytorch_file_and_checks_its_prefix() {
    // `--backbone efficientnet-b4` (no --source) asks for efficientnet_pytorch's release file
    // by its published name; random bytes cannot have its SHA-256 prefix 6ed6700e.
    let data = bytes(30_000, 78);
    assert!(!sha_hex(&data).starts_with("6ed6700e"));
    let server = Server::start(&[("efficientnet-b4-6ed6700e.pth", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let args = effnet_args(dir.path(), &server, "efficientnet-b4");
    let stub = Stub::new(Some(Verdict::Passed));
    let err = download_weights_with(&args, &stub).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{msg}");
    assert!(msg.contains("6ed6700e") && msg.contains(&sha_hex(&data)), "{msg}");
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "efficientnet-b4-6ed6700e.pth");
    assert!(stub.calls.borrow().is_empty(), "never checked");
    assert!(names_in(dir.path()).is_empty(), "{:?}", names_in(dir.path()));
    // The table: B0..B7 by the same scheme, from efficientnet_pytorch's release 1.0.
    for (n, a) in xtask::registry::EFFICIENTNET_PYTORCH.iter().enumerate() {
        let name = format!("efficientnet-b{n}");
        assert_eq!(a.name, name);
        let prefix = a.sha256_prefix.unwrap();
        assert_eq!(a.file_name, format!("{name}-{prefix}.pth"));
        assert!(prefix.len() == 8 && prefix.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.sha256, None);
        let args = effnet_args(dir.path(), &server, &name);
        assert_eq!(args.backbone.artifact_from(args.provider).unwrap(), a);
    }
    assert_eq!(
        xtask::registry::EFFICIENTNET_PYTORCH[4].url(None),
        "https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0/efficientnet-b4-6ed6700e.pth"
    );
}

#[test]
fn an_efficientnet_pytorch_file_with_its_real_prefix_is_checked_and_installed() {
    // A fixture file whose name carries the real SHA-256 prefix of its bytes, served and
    // registered like efficientnet_pytorch's B4 entry.
    let data = bytes(40_000, 79);
    let sha = sha_hex(&data);
    let prefix: &'static str = Box::leak(sha[..8].to_owned().into_boxed_str());
    let file: &'static str = Box::leak(format!("efficientnet-b4-{prefix}.pth").into_boxed_str());
    let artifact = xtask::registry::Artifact {
        file_name: file,
        sha256_prefix: Some(prefix),
        ..xtask::registry::EFFICIENTNET_PYTORCH[4]
    };
    let server = Server::start(&[(file, &data)]);
    let dir = tempfile::tempdir().unwrap();
    let args = effnet_args(dir.path(), &server, "efficientnet-b4");
    let stub = Stub::new(Some(Verdict::Passed));
    let r = xtask::cli::download_artifact_with(&artifact, &args, &stub).unwrap();
    assert_eq!(r.path, dir.path().join(file));
    assert_eq!(r.sha256, sha);
    assert_eq!(fs::read(&r.path).unwrap(), data);
    let calls = stub.calls.borrow().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "efficientnet-b4");
    assert_eq!(
        calls[0].1,
        dir.path().join(format!("efficientnet-b4-{prefix}.unchecked.pth"))
    );
    assert_eq!(
        names_in(dir.path()),
        [file.to_owned(), format!("{file}.pretrained.json")]
    );
    // The same bytes under a name with another prefix: refused, never checked.
    let other = xtask::registry::Artifact {
        sha256_prefix: Some(if prefix == "00000000" { "11111111" } else { "00000000" }),
        ..artifact
    };
    let dir2 = tempfile::tempdir().unwrap();
    let args = effnet_args(dir2.path(), &server, "efficientnet-b4");
    let stub = Stub::new(Some(Verdict::Passed));
    let err = xtask::cli::download_artifact_with(&other, &args, &stub).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    assert!(stub.calls.borrow().is_empty());
    assert!(names_in(dir2.path()).is_empty());
}

#[test]
fn the_onnx_zoo_b4_is_efficientnet_b4_timm() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let timm = effnet_args(dir.path(), &server, "efficientnet-b4-timm");
    let a = timm.backbone.artifact_from(timm.provider).unwrap();
    assert_eq!(a, &xtask::registry::EFFICIENTNET_B4_TIMM);
    assert_eq!(a.file_name, "efficientnet_b4_Opset16.onnx");
    // Asking for the zoo file under the paper's name is refused with the name to use.
    let err = effnet_args(dir.path(), &server, "efficientnet-b4")
        .backbone
        .artifact_from(Some(xtask::cli::WeightsProvider::OnnxZoo))
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchSource { .. }), "{err}");
    assert!(err.to_string().contains("efficientnet-b4-timm"), "{err}");
}
