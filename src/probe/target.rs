//! The URL a probe points at: `http://` or `https://`, a host (name, IPv4 or
//! `[IPv6]`), an optional port and the request target. Nothing else is
//! accepted (no user info, no fragments sent), so a typo fails early and clearly.

use std::fmt;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP/1.1 over TCP.
    Http,
    /// HTTP/1.1 over TLS (rustls).
    Https,
}

/// A parsed probe URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The scheme.
    pub scheme: Scheme,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    /// The port (80 or 443 when the URL has none).
    pub port: u16,
    /// Path and query, as sent in the request line (`/` at least).
    pub path: String,
}

/// A URL the probe cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `http://` or `https://`.
    #[error("bad URL {0:?}: expected http://HOST[:PORT]/PATH or https://...")]
    Scheme(String),
    /// No host, a bad port, user info or characters not allowed in a request line.
    #[error("bad URL {0:?}: {1}")]
    Invalid(String, &'static str),
}

impl Target {
    /// Parse `url`.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let shown = || url.chars().take(200).collect::<String>();
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(url, "http://") {
            (Scheme::Http, r)
        } else if let Some(r) = strip_prefix_ci(url, "https://") {
            (Scheme::Https, r)
        } else {
            return Err(UrlError::Scheme(shown()));
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let bad = |why| Err(UrlError::Invalid(shown(), why));
        if authority.contains('@') {
            return bad("user info is not supported");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return bad("unclosed [ in the host");
            };
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return bad("no host");
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b))
        {
            return bad("the host has characters a host name cannot have");
        }
        let port = match port {
            None => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
            },
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return bad("the port is not a number from 1 to 65535"),
            },
        };
        // request-target characters only: no spaces or controls (they would
        // corrupt the request line)
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("the path has spaces or control characters (percent-encode them)");
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Target {
            scheme,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The `Host` header value (the port only when it is not the scheme's default).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.scheme, self.port) {
            (Scheme::Http, 80) | (Scheme::Https, 443) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |u: &str| {
            let t = Target::parse(u).unwrap();
            (
                t.scheme,
                t.host.clone(),
                t.port,
                t.path.clone(),
                t.to_string(),
            )
        };
        #[rustfmt::skip]
        let rows = [
            ("http://127.0.0.1:8080/a/b?c", (Scheme::Http, "127.0.0.1", 8080, "/a/b?c", "http://127.0.0.1:8080/a/b?c")),
            ("http://example.org", (Scheme::Http, "example.org", 80, "/", "http://example.org/")),
            ("HTTPS://example.org/x#frag", (Scheme::Https, "example.org", 443, "/x", "https://example.org/x")),
            ("https://[::1]:8443/f", (Scheme::Https, "::1", 8443, "/f", "https://[::1]:8443/f")),
            ("http://[::1]/f", (Scheme::Http, "::1", 80, "/f", "http://[::1]/f")),
            ("http://h?q=1", (Scheme::Http, "h", 80, "/?q=1", "http://h/?q=1")),
            ("https://h:443/", (Scheme::Https, "h", 443, "/", "https://h/")),
        ];
        for (url, (scheme, host, port, path, shown)) in rows {
            assert_eq!(
                ok(url),
                (scheme, host.into(), port, path.into(), shown.into()),
                "{url}"
            );
        }
        for bad in [
            "ftp://h/",
            "h/x",
            "http://",
            "http:///x",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://u:p@h/",
            "http://[::1/",
            "http://h/a b",
            "http://h/\r\nX: y",
            "http://h h/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }
}
