//! Downloads against a local HTTP server: success, truncation and resume, Range handling,
//! checksum and status errors, and `--from FILE`.

mod common;

use common::{Mode, Server, bytes, names_in, sha_hex};
use std::fs;
use xtask::Error;
use xtask::fetch::{
    Expected, FetchOptions, Outcome, download, import_file, part_path, sha256_file,
};

const QUIET: FetchOptions = FetchOptions { quiet: true };

/// Reference checksum straight from the `sha2` crate (not through xtask's code).
fn expect(data: &[u8]) -> Expected {
    Expected {
        sha256: Some(sha_hex(data)),
        size: Some(data.len() as u64),
    }
}

#[test]
fn sha256_of_a_published_test_vector() {
    // FIPS 180-2 appendix B.1 / B.2 test vectors.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("abc");
    fs::write(&p, b"abc").unwrap();
    assert_eq!(
        sha256_file(&p).unwrap().0,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    fs::write(
        &p,
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    )
    .unwrap();
    assert_eq!(
        sha256_file(&p).unwrap().0,
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

#[test]
fn download_succeeds_and_leaves_only_the_final_file() {
    let data = bytes(200_000, 1);
    let server = Server::start(&[("w.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub").join("w.onnx");
    let r = download(&server.url("w.onnx"), &dest, &expect(&data), QUIET).unwrap();
    assert_eq!(r.outcome, Outcome::Downloaded { resumed_from: 0 });
    assert_eq!(r.sha256, sha_hex(&data));
    assert_eq!(fs::read(&dest).unwrap(), data);
    assert_eq!(names_in(dest.parent().unwrap()), vec!["w.onnx"]);
    // A second call finds the verified file and makes no request.
    let before = server.seen().len();
    let r = download(&server.url("w.onnx"), &dest, &expect(&data), QUIET).unwrap();
    assert_eq!(r.outcome, Outcome::AlreadyPresent);
    assert_eq!(server.seen().len(), before);
}

#[test]
fn truncated_transfer_errors_then_resumes_with_range() {
    let data = bytes(300_000, 2);
    let server = Server::start(&[("w.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.onnx");
    server.set_mode(Mode::TruncateAfter(123_456));
    let err = download(&server.url("w.onnx"), &dest, &expect(&data), QUIET).unwrap_err();
    match &err {
        Error::Truncated { got, expected, .. } => {
            assert_eq!((*got, *expected), (123_456, Some(300_000)));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(
        err.to_string().contains("got 123456 of 300000 bytes"),
        "{err}"
    );
    assert!(!dest.exists(), "no final file after a truncated transfer");
    assert_eq!(fs::read(part_path(&dest)).unwrap(), data[..123_456]);

    server.set_mode(Mode::Normal);
    let r = download(&server.url("w.onnx"), &dest, &expect(&data), QUIET).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Downloaded {
            resumed_from: 123_456
        }
    );
    assert_eq!(fs::read(&dest).unwrap(), data);
    assert!(!part_path(&dest).exists());
    let last = server.seen().last().cloned().unwrap();
    assert_eq!(last.range.as_deref(), Some("bytes=123456-"));
    assert_eq!(last.status, 206);
}

#[test]
fn truncated_resume_is_itself_resumable() {
    // The resumed request is cut too; the third call completes from the new offset.
    let data = bytes(100_000, 3);
    let server = Server::start(&[("f", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    server.set_mode(Mode::TruncateAfter(10_000));
    assert!(matches!(
        download(&server.url("f"), &dest, &expect(&data), QUIET),
        Err(Error::Truncated { got: 10_000, .. })
    ));
    assert!(matches!(
        download(&server.url("f"), &dest, &expect(&data), QUIET),
        Err(Error::Truncated { got: 20_000, .. })
    ));
    server.set_mode(Mode::Normal);
    download(&server.url("f"), &dest, &expect(&data), QUIET).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), data);
    let ranges: Vec<_> = server
        .seen()
        .into_iter()
        .map(|s| (s.range, s.status))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (None, 200),
            (Some("bytes=10000-".into()), 206),
            (Some("bytes=20000-".into()), 206)
        ]
    );
}

#[test]
fn interrupted_download_resumes_via_range() {
    // A `.part` file left by an earlier, interrupted run.
    let data = bytes(150_000, 4);
    let server = Server::start(&[("w.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.onnx");
    fs::write(part_path(&dest), &data[..60_000]).unwrap();
    let r = download(&server.url("w.onnx"), &dest, &expect(&data), QUIET).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Downloaded {
            resumed_from: 60_000
        }
    );
    assert_eq!(fs::read(&dest).unwrap(), data);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].range.as_deref(), Some("bytes=60000-"));
    assert_eq!(seen[0].status, 206);
}

#[test]
fn server_ignoring_range_restarts_cleanly() {
    let data = bytes(80_000, 5);
    let server = Server::start(&[("w.onnx", &data)]);
    server.set_mode(Mode::IgnoreRange);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.onnx");
    // Garbage in the partial file: it must be thrown away, not prepended.
    fs::write(part_path(&dest), vec![0xAAu8; 30_000]).unwrap();
    let r = download(&server.url("w.onnx"), &dest, &expect(&data), QUIET).unwrap();
    assert_eq!(r.outcome, Outcome::Downloaded { resumed_from: 0 });
    assert_eq!(fs::read(&dest).unwrap(), data);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].range.as_deref(), Some("bytes=30000-"));
    assert_eq!(seen[0].status, 200);
}

#[test]
fn range_not_satisfiable_restarts_from_zero() {
    // A stale `.part` at least as long as the file, with no known size: the server answers
    // 416 and the download starts over.
    let data = bytes(5_000, 6);
    let server = Server::start(&[("f", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    fs::write(part_path(&dest), vec![1u8; 6_000]).unwrap();
    let exp = Expected {
        sha256: Some(sha_hex(&data)),
        size: None,
    };
    download(&server.url("f"), &dest, &exp, QUIET).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), data);
    let statuses: Vec<u16> = server.seen().iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![416, 200]);
}

#[test]
fn wrong_checksum_errors_and_leaves_no_file() {
    let data = bytes(50_000, 7);
    let server = Server::start(&[("w.onnx", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.onnx");
    let wrong = "0".repeat(64);
    let exp = Expected {
        sha256: Some(wrong.clone()),
        size: Some(data.len() as u64),
    };
    let err = download(&server.url("w.onnx"), &dest, &exp, QUIET).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    assert!(
        msg.contains(&wrong) && msg.contains(&sha_hex(&data)),
        "message names expected and got: {msg}"
    );
    assert!(!dest.exists());
    assert!(
        !part_path(&dest).exists(),
        "a file that fails verification is deleted"
    );
    assert!(names_in(dir.path()).is_empty());
}

#[test]
fn wrong_size_errors_and_leaves_no_file() {
    let data = bytes(10_000, 8);
    let server = Server::start(&[("f", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let exp = Expected {
        sha256: Some(sha_hex(&data)),
        size: Some(9_000),
    };
    // The server announces another length than expected: refused before any byte is written.
    let err = download(&server.url("f"), &dest, &exp, QUIET).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedLength {
                expected: 9_000,
                announced: 10_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("announced 10000 bytes"), "{err}");
    assert!(names_in(dir.path()).is_empty());

    // A local file of the wrong size is refused by the size check.
    let src = dir.path().join("src");
    fs::write(&src, &data).unwrap();
    let err = import_file(&src, &dest, &exp, QUIET).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 9_000,
                got: 10_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!dest.exists());
}

#[test]
fn server_error_status_is_reported() {
    let data = bytes(1_000, 9);
    let server = Server::start(&[("w.onnx", &data)]);
    server.set_mode(Mode::Status(500));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.onnx");
    let err = download(&server.url("w.onnx"), &dest, &expect(&data), QUIET).unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert!(names_in(dir.path()).is_empty());

    server.set_mode(Mode::Normal);
    let err = download(&server.url("missing"), &dest, &expect(&data), QUIET).unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
}

#[test]
fn connection_refused_is_an_http_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let err = download(
        &format!("http://127.0.0.1:{port}/f"),
        &dir.path().join("f"),
        &Expected::default(),
        QUIET,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
}

#[test]
fn from_file_is_verified_and_copied() {
    let data = bytes(40_000, 10);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("local.onnx");
    fs::write(&src, &data).unwrap();
    let out = dir.path().join("out");
    let dest = out.join("w.onnx");

    let wrong = Expected {
        sha256: Some("f".repeat(64)),
        size: None,
    };
    let err = import_file(&src, &dest, &wrong, QUIET).unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { ref file, .. } if file == &src),
        "{err:?}"
    );
    assert!(!dest.exists());
    assert_eq!(
        fs::read(&src).unwrap(),
        data,
        "the source is left untouched"
    );

    let r = import_file(&src, &dest, &expect(&data), QUIET).unwrap();
    assert_eq!(r.outcome, Outcome::Copied);
    assert_eq!(fs::read(&dest).unwrap(), data);
    assert_eq!(names_in(&out), vec!["w.onnx"]);
}
