//! Connections of `tailguard serve` held to their deadlines: shutdown finishes within
//! `--shutdown-timeout` whatever clients hold, a second signal exits at once, and the header,
//! body and idle timeouts close slow clients.
//!
//! Every timeout here is set short (200 ms) or long (an hour) by flag; each test asserts that
//! the event happens well within a generous guard, never how long it took.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{GUARD, Server};

/// A timeout flag that never fires during a test.
const NEVER: &str = "1h";

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    stream
}

/// Reads until the server closes the connection (or resets it); panics if it is still open
/// after the guard. Returns what was read.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                return received;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the connection is still open after {GUARD:?}; read so far: {:?}",
                    String::from_utf8_lossy(&received)
                )
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Clients a hostile-but-ordinary test would leave behind: a half-sent head, and a head whose
/// body is 990 bytes short (to a handler that reads it and to one that does not).
fn half_sent_requests(addr: SocketAddr) -> Vec<TcpStream> {
    let partial: [&[u8]; 3] = [
        b"GET /kv/1 HTTP/1.1\r\nHost: x\r\n",
        b"PUT /kv/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
        b"GET /kv/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
    ];
    partial
        .iter()
        .map(|bytes| {
            let mut stream = connect(addr);
            stream.write_all(bytes).unwrap();
            stream
        })
        .collect()
}

#[test]
fn half_sent_requests_do_not_hold_shutdown_past_its_deadline() {
    let mut server = Server::start(&[
        "--keys",
        "100",
        "--shutdown-timeout",
        "200ms",
        "--header-read-timeout",
        NEVER,
        "--request-body-timeout",
        NEVER,
        "--idle-timeout",
        NEVER,
    ]);
    let mut clients = half_sent_requests(server.addr);
    // The server is up and answering while they wait.
    assert_eq!(server.request("GET", "/kv/4", b"").status, 200);
    let mut stderr = server.stderr();
    server.signal("TERM");
    let status =
        server.wait_exit(GUARD).expect("the server exits within the guard, not when its clients leave");
    let stderr = stderr.all(GUARD);
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("SIGTERM") && stderr.contains("stopped"), "{stderr}");
    // Every client saw its connection closed.
    for client in &mut clients {
        read_until_closed(client);
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = Server::start(&[
        "--keys",
        "100",
        "--shutdown-timeout",
        NEVER,
        "--header-read-timeout",
        NEVER,
        "--request-body-timeout",
        NEVER,
    ]);
    let _clients = half_sent_requests(server.addr);
    assert_eq!(server.request("GET", "/kv/4", b"").status, 200);
    let mut stderr = server.stderr();
    server.signal("TERM");
    assert!(stderr.wait_for("finishing requests in flight", GUARD), "{:?}", stderr.seen);
    // The first signal's shutdown would wait an hour for the half-sent requests.
    assert!(server.wait_exit(Duration::from_millis(100)).is_none(), "{:?}", stderr.seen);
    server.signal("INT");
    let status = server.wait_exit(GUARD).expect("a second signal ends the process");
    let stderr = stderr.all(GUARD);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("second signal (SIGINT)"), "{stderr}");
}

#[test]
fn the_header_body_and_idle_timeouts_close_slow_clients() {
    let server = Server::start(&[
        "--keys",
        "100",
        "--header-read-timeout",
        "200ms",
        "--request-body-timeout",
        "200ms",
        "--idle-timeout",
        "200ms",
    ]);

    // A silent connection is closed.
    let mut silent = connect(server.addr);
    assert!(read_until_closed(&mut silent).is_empty());

    // A head sent one byte every 50 ms (it would take over 10 s) is cut off unanswered.
    let mut slow = connect(server.addr);
    let mut writer = slow.try_clone().unwrap();
    let head = format!("GET /kv/1 HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(200));
    let dripping = std::thread::spawn(move || {
        for byte in head.bytes() {
            if writer.write_all(&[byte]).is_err() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    });
    let answer = read_until_closed(&mut slow);
    assert!(answer.is_empty(), "a slow head got an answer: {}", String::from_utf8_lossy(&answer));
    drop(slow);
    let _ = dripping.join();

    // A keep-alive connection is closed once idle after its response.
    let mut idle = connect(server.addr);
    idle.write_all(b"GET /kv/1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = read_until_closed(&mut idle);
    let reply = support::parse(&answer);
    assert_eq!(reply.status, 200, "{}", reply.text());

    // A body that does not arrive in time: 408 in the one error shape, then the connection closes.
    let mut short = connect(server.addr);
    short.write_all(b"PUT /kv/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789").unwrap();
    let reply = support::parse(&read_until_closed(&mut short));
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(reply.json()["status"], 408);
    assert!(reply.error().contains("--request-body-timeout"), "{}", reply.error());
    // Nothing was stored from the short body.
    assert_eq!(server.request("GET", "/kv/2", b"").status, 200);
    assert_ne!(server.request("GET", "/kv/2", b"").body, b"0123456789");

    // An ordinary client is served throughout; the timeouts are counted.
    let metrics = server.request("GET", "/metrics", b"").text();
    for deadline in ["header-read", "idle"] {
        let line = format!("tailguard_connections_timed_out_total{{deadline=\"{deadline}\"}}");
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
}
