//! A `tailguard serve` process on an ephemeral loopback port, and a minimal HTTP/1.1 client that
//! can also send the malformed requests a real client library refuses to.

#![allow(dead_code, unreachable_pub)] // each test file uses its own part; `pub` for the test files

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long an awaited event may take on a slow, loaded machine before a test fails: a guard,
/// never a measurement.
pub const GUARD: Duration = Duration::from_secs(30);

/// A running server, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub backup_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `tailguard serve` with `args` after the listen address and a temporary backup
    /// directory, and waits for the line that gives the bound address.
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(&dir.path().join("backups"), args);
        server._dir = Some(dir);
        server
    }

    /// [`Server::start`] with this backup directory (kept when the server ends, for the next).
    pub fn start_in(backup_dir: &Path, args: &[&str]) -> Server {
        let backup_dir = backup_dir.to_owned();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tailguard"))
            .args(["serve", "--listen", "127.0.0.1:0", "--backup-dir"])
            .arg(&backup_dir)
            .args(args)
            // Held open in `child.stdin` (for `--stop-on-stdin-eof`) until taken or dropped.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr, backup_dir, _dir: None }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// One request; see [`request`].
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        request(self.addr, method, path, body)
    }

    /// One request with extra header lines (`"Name: value"`).
    pub fn request_with(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
        request_with(self.addr, method, path, headers, body)
    }

    /// GET `path`, expecting 200 and JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let reply = self.request("GET", path, b"");
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        reply.json()
    }

    /// Polls GET `path` until `done` holds for its JSON (at most 60 s; a slow machine only makes
    /// it take longer, never fail earlier).
    pub fn poll_json(&self, path: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.get_json(path);
            if done(&value) {
                return value;
            }
            assert!(Instant::now() < deadline, "GET {path} never reached the expected state: {value}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits (at most 60 s) for the exit; returns the status and stderr.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        let killed = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let stderr: ChildStderr = self.child.stderr.take().unwrap();
        let mut text = String::new();
        BufReader::new(stderr).read_to_string(&mut text).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, text);
            }
            assert!(Instant::now() < deadline, "the server did not exit after SIGTERM: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`) to the server.
    pub fn signal(&self, signal: &str) {
        let sent =
            Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// The server's stderr, read line by line on a thread of its own.
    pub fn stderr(&mut self) -> Lines {
        let stderr = self.child.stderr.take().expect("stderr is taken once");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx, seen: Vec::new() }
    }

    /// Waits, at most `guard`, for the server to exit.
    pub fn wait_exit(&mut self, guard: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + guard;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn backup_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.backup_dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of a server's stderr as they come.
pub struct Lines {
    rx: Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl Lines {
    /// Waits, at most `guard`, for a line containing `needle`; whether one came.
    pub fn wait_for(&mut self, needle: &str, guard: Duration) -> bool {
        if self.seen.iter().any(|l| l.contains(needle)) {
            return true;
        }
        let deadline = Instant::now() + guard;
        loop {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Every line, once the stream has ended (waits at most `guard`).
    pub fn all(&mut self, guard: Duration) -> String {
        let deadline = Instant::now() + guard;
        while let Ok(line) = self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `error` message of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {}", self.text()))
            .to_owned()
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response (chunked
/// bodies are decoded).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    request_with(addr, method, path, &[], body)
}

/// [`request`] with extra header lines.
pub fn request_with(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading an oversized body and close: ignore write errors.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

/// Parses one raw response (head and body as read until the connection closed).
pub fn parse(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked =
        headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

/// Whether `path` names a file that `tailguard restore` refuses.
pub fn restore_refuses(path: &Path, keys: u64) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tailguard"))
        .arg("restore")
        .arg(path)
        .args(["--keys", &keys.to_string()])
        .output()
        .unwrap();
    (!output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}
