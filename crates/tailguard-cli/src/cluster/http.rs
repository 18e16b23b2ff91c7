//! A small blocking HTTP/1.1 client for the coordinator: one keep-alive connection per caller,
//! `Content-Length` and chunked bodies, reconnecting once when the server closed an idle
//! connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one request may take before the coordinator gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A node's address, from `http://host:port` or `host:port`.
///
/// # Errors
/// A message naming the text when it has a path, another scheme, or does not resolve.
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    let rest = text.strip_prefix("http://").unwrap_or(text).trim_end_matches('/');
    if rest.contains('/') || rest.contains("://") {
        return Err(format!("node address {text:?}: use http://HOST:PORT (no path, no https)"));
    }
    rest.to_socket_addrs()
        .map_err(|e| format!("node address {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("node address {text:?} resolves to no address"))
}

/// A response: status and body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    ///
    /// # Errors
    /// A message with the body's start when it is not JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let text = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned();
            format!("answer is not JSON ({e}): {text}")
        })
    }
}

/// A keep-alive connection to one node.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client of the node at `addr` (connects on the first request).
    pub fn new(addr: SocketAddr) -> Self {
        Client { addr, stream: None }
    }

    /// One request; a connection the server had closed is reopened once.
    ///
    /// # Errors
    /// The I/O or protocol error, as text.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Reply, String> {
        let reused = self.stream.is_some();
        match self.try_request(method, path, body) {
            Ok(reply) => Ok(reply),
            Err(_) if reused => {
                self.stream = None;
                self.try_request(method, path, body)
            }
            Err(e) => Err(e),
        }
        .map_err(|e| {
            self.stream = None;
            format!("{method} http://{}{path}: {e}", self.addr)
        })
    }

    /// GET `path`, expecting 200 and JSON.
    ///
    /// # Errors
    /// The request's error, another status (with the body), or a body that is not JSON.
    pub fn get_json(&mut self, path: &str) -> Result<serde_json::Value, String> {
        let reply = self.request("GET", path, b"")?;
        if reply.status != 200 {
            return Err(format!("GET {path}: {} {}", reply.status, String::from_utf8_lossy(&reply.body)));
        }
        reply.json()
    }

    fn try_request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Reply, String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT)
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            self.stream = Some(BufReader::new(stream));
        }
        let reader = self.stream.as_mut().expect("connected above");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let stream = reader.get_mut();
        stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).map_err(|e| e.to_string())?;
        let reply = read_reply(reader)?;
        if reply.1 {
            self.stream = None;
        }
        Ok(reply.0)
    }
}

/// Reads one response; also says whether the server closes the connection after it.
fn read_reply(reader: &mut BufReader<TcpStream>) -> Result<(Reply, bool), String> {
    let mut line = String::new();
    let mut read_line = |line: &mut String| {
        line.clear();
        match reader.read_line(line) {
            Ok(0) => Err("connection closed".to_owned()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {size:?}"))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
        close = true;
    }
    Ok((Reply { status, body }, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_are_host_and_port() {
        assert_eq!(parse_address("http://127.0.0.1:7878").unwrap(), "127.0.0.1:7878".parse().unwrap());
        assert_eq!(parse_address("127.0.0.1:7878/").unwrap(), "127.0.0.1:7878".parse().unwrap());
        assert!(parse_address("https://127.0.0.1:7878").unwrap_err().contains("no https"));
        assert!(parse_address("http://127.0.0.1:7878/jobs").unwrap_err().contains("no path"));
        assert!(parse_address("127.0.0.1").is_err());
    }
}
