//! The commands end to end (in-process), against a local mirror or a local file.

mod common;

use clap::Parser;
use common::{Server, bytes, sha_hex};
use std::fs;
use std::io::Write;
use xtask::Error;
use xtask::cli::{Cli, Command, Download, download_mvtec, download_weights, resolve_expected, run};
use xtask::fetch::Outcome;
use xtask::registry::{self, Artifact};

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).unwrap()
}

fn mvtec_archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("license.txt", &b"CC BY-NC-SA 4.0"[..]),
        ("readme.txt", b"MVTec AD"),
        ("bottle/train/good/000.png", b"bottle-0"),
        ("cable/train/good/000.png", b"cable-0"),
        ("screw/test/good/000.png", b"screw-0"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
    enc.write_all(&tar).unwrap();
    enc.finish().unwrap()
}

#[test]
fn weights_via_mirror_with_checksum_override() {
    let data = bytes(64_000, 21);
    let server = Server::start(&[("resnet18_Opset16.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let sha = sha_hex(&data);
    let cli = parse(&[
        "download",
        "weights",
        "--backbone",
        "resnet18",
        "--quiet",
        "--dest",
        dir.path().to_str().unwrap(),
        "--mirror",
        &server.base(),
        "--sha256",
        &sha,
        "--skip-pretrained-check",
    ]);
    let Command::Download(Download::Weights(args)) = cli.command else {
        panic!("parsed wrong command")
    };
    let r = download_weights(&args).unwrap();
    assert_eq!(r.path, dir.path().join("resnet18_Opset16.onnx"));
    assert_eq!(fs::read(&r.path).unwrap(), data);
    assert_eq!(server.seen()[0].path, "resnet18_Opset16.onnx");
}

#[test]
fn weights_checked_against_the_registry_checksum() {
    // Without --sha256 the registry's checksum and size apply: a mirror serving other bytes
    // is refused and nothing is left behind.
    let data = bytes(1_000, 22);
    let server = Server::start(&[("efficientnet_b4_Opset16.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let cli = parse(&[
        "download",
        "weights",
        "--backbone",
        "efficientnet-b4-timm",
        "--quiet",
        "--dest",
        dir.path().to_str().unwrap(),
        "--mirror",
        &server.base(),
    ]);
    let err = run(cli).unwrap_err();
    // The server announces 1,000 bytes where the registry says 77,233,636: refused up front.
    assert!(
        matches!(
            err,
            Error::UnexpectedLength {
                expected: 77_233_636,
                announced: 1_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn weights_from_local_file() {
    let data = bytes(10_000, 23);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("downloaded-elsewhere.onnx");
    fs::write(&src, &data).unwrap();
    let dest = dir.path().join("w");
    let cli = parse(&[
        "download",
        "weights",
        "--backbone",
        "resnet18",
        "--quiet",
        "--dest",
        dest.to_str().unwrap(),
        "--from",
        src.to_str().unwrap(),
        "--sha256",
        &sha_hex(&data),
        "--skip-pretrained-check",
    ]);
    let Command::Download(Download::Weights(args)) = cli.command else {
        panic!("parsed wrong command")
    };
    let r = download_weights(&args).unwrap();
    assert_eq!(r.outcome, Outcome::Copied);
    assert_eq!(fs::read(dest.join("resnet18_Opset16.onnx")).unwrap(), data);
}

#[test]
fn mirror_and_from_conflict() {
    let r = Cli::try_parse_from([
        "xtask", "download", "mvtec", "--mirror", "http://x", "--from", "f",
    ]);
    assert!(r.is_err());
}

#[test]
fn mvtec_categories_download_extract_and_skip() {
    let archive = mvtec_archive();
    let server = Server::start(&[("mvtec_anomaly_detection.tar.xz", &archive)]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mvtec");
    let sha = sha_hex(&archive);
    let base = [
        "download",
        "mvtec",
        "--quiet",
        "--dest",
        root.to_str().unwrap(),
        "--mirror",
        &server.base(),
        "--sha256",
        &sha,
    ];
    let args_with = |extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        let Command::Download(Download::Mvtec(a)) = parse(&v).command else {
            panic!("parsed wrong command")
        };
        a
    };

    let r = download_mvtec(&args_with(&["--category", "bottle"])).unwrap();
    assert_eq!(r.extracted, vec!["bottle", "license.txt", "readme.txt"]);
    assert!(root.join("bottle/train/good/000.png").is_file());
    assert!(!root.join("cable").exists());
    assert!(
        root.join("mvtec_anomaly_detection.tar.xz").is_file(),
        "archive kept for later categories"
    );

    // A second category reuses the verified archive: no new request.
    let r = download_mvtec(&args_with(&["--category", "cable", "--category", "bottle"])).unwrap();
    assert_eq!(r.extracted, vec!["cable", "license.txt", "readme.txt"]);
    assert_eq!(r.skipped, vec!["bottle"]);
    assert_eq!(server.seen().len(), 1);

    // Everything asked for is present: nothing to fetch or extract.
    let r = download_mvtec(&args_with(&["--category", "cable"])).unwrap();
    assert!(r.extracted.is_empty() && r.archive.is_none());

    // A category MVTec AD has but this archive lacks: clean error, nothing placed.
    let err = download_mvtec(&args_with(&["--category", "zipper"])).unwrap_err();
    assert!(matches!(err, Error::MissingInArchive { .. }), "{err:?}");
    assert!(!root.join("zipper").exists());

    // --delete-archive removes the downloaded archive after extraction.
    let r = download_mvtec(&args_with(&["--category", "screw", "--delete-archive"])).unwrap();
    assert_eq!(r.extracted, vec!["license.txt", "readme.txt", "screw"]);
    assert!(!root.join("mvtec_anomaly_detection.tar.xz").exists());
}

#[test]
fn mvtec_from_file_and_unknown_category() {
    let archive = mvtec_archive();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mvtec_anomaly_detection.tar.xz");
    fs::write(&src, &archive).unwrap();
    let root = dir.path().join("data");
    let cli = |extra: &[&str], sha: &str| {
        let mut v = vec![
            "download",
            "mvtec",
            "--quiet",
            "--dest",
            root.to_str().unwrap(),
            "--from",
            src.to_str().unwrap(),
        ];
        v.extend_from_slice(&["--sha256", sha]);
        v.extend_from_slice(extra);
        let Command::Download(Download::Mvtec(a)) = parse(&v).command else {
            panic!("parsed wrong command")
        };
        a
    };
    let wrong = "1".repeat(64);
    let err = download_mvtec(&cli(&["--category", "screw"], &wrong)).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    assert!(!root.join("screw").exists());

    let r = download_mvtec(&cli(&["--category", "screw"], &sha_hex(&archive))).unwrap();
    assert_eq!(r.extracted, vec!["license.txt", "readme.txt", "screw"]);
    assert!(src.exists(), "a --from archive is never deleted");

    let err = download_mvtec(&cli(&["--category", "bottel"], &sha_hex(&archive))).unwrap_err();
    assert!(matches!(err, Error::UnknownCategory { .. }), "{err:?}");
    assert!(
        err.to_string().contains("bottle"),
        "lists the known names: {err}"
    );
}

#[test]
fn unverified_artifacts_need_an_explicit_decision() {
    let no_sum = Artifact {
        sha256: None,
        size: None,
        ..registry::MVTEC_AD
    };
    let err = resolve_expected(&no_sum, None, false).unwrap_err();
    assert!(matches!(err, Error::Unverified { .. }), "{err:?}");
    assert!(err.to_string().contains("--trust-unverified"), "{err}");
    assert_eq!(resolve_expected(&no_sum, None, true).unwrap().sha256, None);
    let given = "AB".repeat(32);
    assert_eq!(
        resolve_expected(&no_sum, Some(&given), false)
            .unwrap()
            .sha256,
        Some("ab".repeat(32))
    );
    assert!(matches!(
        resolve_expected(&no_sum, Some("xyz"), false),
        Err(Error::InvalidSha256 { .. })
    ));
    // A known checksum is never dropped by --trust-unverified.
    let known = resolve_expected(&registry::RESNET18, None, true).unwrap();
    assert_eq!(known.sha256.as_deref(), registry::RESNET18.sha256);
    assert_eq!(known.size, Some(46_748_516));
}

#[test]
fn registry_is_well_formed() {
    for a in registry::ARTIFACTS {
        assert!(a.url(None).starts_with("https://"), "{}", a.name);
        assert!(a.url(None).ends_with(a.file_name));
        if let Some(s) = a.sha256 {
            assert!(
                s.len() == 64
                    && s.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{}",
                a.name
            );
        }
    }
    assert_eq!(
        registry::RESNET18.url(Some("http://m/x/")),
        "http://m/x/resnet18_Opset16.onnx"
    );
}

#[test]
fn binary_exits_non_zero_with_a_clear_message() {
    let data = bytes(2_000, 24);
    let server = Server::start(&[("resnet18_Opset16.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "download",
            "weights",
            "--backbone",
            "resnet18",
            "--quiet",
            "--mirror",
        ])
        .arg(server.base())
        .arg("--sha256")
        .arg("0".repeat(64))
        .arg("--dest")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: checksum mismatch"), "{stderr}");
    assert!(stderr.contains(&sha_hex(&data)), "{stderr}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["download", "mvtec", "--category", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown MVTec AD category \"nope\""));
}
