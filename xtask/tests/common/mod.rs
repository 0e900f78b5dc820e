//! A tiny HTTP/1.1 file server on 127.0.0.1 for the download tests, with switchable
//! misbehaviour (errors, truncated bodies, ignoring `Range`) and a log of what it served.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Honour `Range` (206 / 416), else 200.
    Normal,
    /// Always 200 with the whole file, whatever the `Range` header says.
    IgnoreRange,
    /// Always this status with a short body.
    Status(u16),
    /// Like `Normal`, but close the connection after this many body bytes
    /// (headers announce the full length).
    TruncateAfter(usize),
}

/// One request as seen by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
}

struct State {
    files: HashMap<String, Vec<u8>>,
    mode: Mode,
    seen: Vec<Seen>,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(files: &[(&str, &[u8])]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            files: files
                .iter()
                .map(|(p, d)| ((*p).to_owned(), d.to_vec()))
                .collect(),
            mode: Mode::Normal,
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let _ = serve(stream, &st);
                }
            }
        });
        Server {
            addr,
            state,
            stop,
            handle: Some(handle),
        }
    }

    /// Base URL (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base(), path.trim_start_matches('/'))
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_owned();
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.trim().to_owned());

    let mut st = state.lock().unwrap();
    let mode = st.mode;
    let file = st.files.get(&path).cloned();
    let (status, extra, body, send): (u16, String, Vec<u8>, Option<usize>) = match (mode, file) {
        (Mode::Status(code), _) => (code, String::new(), b"error".to_vec(), None),
        (_, None) => (404, String::new(), b"not found".to_vec(), None),
        (mode, Some(data)) => {
            let from = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            let cut = match mode {
                Mode::TruncateAfter(n) => Some(n),
                _ => None,
            };
            match (mode, from) {
                (Mode::IgnoreRange, _) | (_, None) => (200, String::new(), data, cut),
                (_, Some(n)) if n >= data.len() => (
                    416,
                    format!("Content-Range: bytes */{}\r\n", data.len()),
                    Vec::new(),
                    None,
                ),
                (_, Some(n)) => (
                    206,
                    format!(
                        "Content-Range: bytes {}-{}/{}\r\n",
                        n,
                        data.len() - 1,
                        data.len()
                    ),
                    data[n..].to_vec(),
                    cut,
                ),
            }
        }
    };
    st.seen.push(Seen {
        path,
        range,
        status,
    });
    drop(st);
    let header = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{extra}Connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    let n = send.unwrap_or(body.len()).min(body.len());
    stream.write_all(&body[..n])?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// Deterministic pseudo-random bytes (xorshift), so fixtures need no files.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// SHA-256 of `data`, lower-case hex.
pub fn sha_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file names in `dir`, sorted.
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
