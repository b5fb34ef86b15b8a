//! `rangeserve --healthcheck URL`: one GET, exit status 0 when the server
//! answers with a status below 500 (a 404 still proves it is up and serving).
//! It lets a container image check itself without curl or wget.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Only `http://HOST[:PORT][/PATH]` is understood.
    #[error("unsupported URL {0:?}: expected http://HOST[:PORT]/PATH")]
    BadUrl(String),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server answered with a 5xx, or not with HTTP.
    #[error("unhealthy: {0}")]
    Status(String),
}

/// Split `http://host[:port][/path]` into (host:port, path).
pub fn split_url(url: &str) -> Result<(String, String), HealthError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HealthError::BadUrl(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HealthError::BadUrl(url.into()));
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'), // [v6]:port
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// GET `url` and return its status line if the status is below 500.
pub fn check(url: &str, timeout: Duration) -> Result<String, HealthError> {
    let (authority, path) = split_url(url)?;
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| HealthError::BadUrl(url.into()))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: rangeserve-healthcheck\r\n\r\n"
    )?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let line = line.trim_end().to_string();
    match line.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) {
        Some(code) if (100..500).contains(&code) && line.starts_with("HTTP/") => Ok(line),
        _ => Err(HealthError::Status(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |u: &str| split_url(u).unwrap();
        assert_eq!(
            ok("http://127.0.0.1:8080/"),
            ("127.0.0.1:8080".into(), "/".into())
        );
        assert_eq!(ok("http://localhost"), ("localhost:80".into(), "/".into()));
        assert_eq!(ok("http://[::1]:9/x?y"), ("[::1]:9".into(), "/x?y".into()));
        assert_eq!(ok("http://[::1]/"), ("[::1]:80".into(), "/".into()));
        assert!(split_url("https://x/").is_err());
        assert!(split_url("http:///").is_err());
    }
}
