//! The `Host` header rules of RFC 9112 section 3.2 that hyper leaves to the
//! server: an HTTP/1.1 request must carry exactly one `Host` field line
//! with a valid value, or be answered 400. HTTP/1.0 requests may omit it.

/// Why a request's `Host` is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An HTTP/1.1 request without `Host` (RFC 9112 3.2).
    #[error("no Host header")]
    Missing,
    /// More than one `Host` field line (RFC 9112 3.2).
    #[error("more than one Host header")]
    Repeated,
    /// A value that is not `uri-host [ ":" port ]` (RFC 9110 7.2).
    #[error("invalid Host value")]
    Invalid,
}

/// Check the `Host` field lines of a request: `values` in order received,
/// `http11`: the request is HTTP/1.1 (or later), where Host is required. Pure.
pub fn check(http11: bool, values: &[&[u8]]) -> Result<(), HostError> {
    match values {
        [] if http11 => Err(HostError::Missing),
        [] => Ok(()),
        [one] if valid(one) => Ok(()),
        [_] => Err(HostError::Invalid),
        _ => Err(HostError::Repeated),
    }
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2-3.2.3). An
/// empty value is valid: a client sends one for a target URI without an
/// authority (RFC 9112 3.2).
pub fn valid(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        // IP-literal = "[" ( IPv6address / IPvFuture ) "]"
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let (literal, after) = (&rest[..end], &rest[end + 1..]);
        if !ip_literal(literal) {
            return false;
        }
        match after {
            [] => return true,
            [b':', port @ ..] => (&b""[..], port),
            _ => return false,
        }
    } else {
        match value.iter().rposition(|&b| b == b':') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, &b""[..]),
        }
    };
    // port = *DIGIT; reg-name (which covers IPv4address) = *( unreserved / pct-encoded / sub-delims )
    port.iter().all(u8::is_ascii_digit) && reg_name(host)
}

fn ip_literal(s: &[u8]) -> bool {
    match s {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        [b'v' | b'V', rest @ ..] => {
            let Some(dot) = rest.iter().position(|&b| b == b'.') else {
                return false;
            };
            let (hex, tail) = (&rest[..dot], &rest[dot + 1..]);
            !hex.is_empty()
                && hex.iter().all(u8::is_ascii_hexdigit)
                && !tail.is_empty()
                && tail
                    .iter()
                    .all(|&b| unreserved(b) || sub_delim(b) || b == b':')
        }
        _ => std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some(),
    }
}

fn reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => match s.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            },
            b if REG_NAME_CHAR[b as usize] => i += 1,
            _ => return false,
        }
    }
    true
}

/// `unreserved / sub-delims` by byte: one load per byte of every request's
/// Host rather than a chain of comparisons.
static REG_NAME_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = unreserved(b as u8) || sub_delim(b as u8);
        b += 1;
    }
    table
};

const fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_is_the_grammar() {
        for b in 0..=255u8 {
            let grammar = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b);
            assert_eq!(REG_NAME_CHAR[b as usize], grammar, "byte {b:#04x}");
        }
    }

    #[test]
    fn values_table() {
        // RFC 9110 7.2 (Host = uri-host [ ":" port ]), RFC 3986 3.2.2
        #[rustfmt::skip]
        let rows: &[(&str, bool)] = &[
            ("example.org", true),
            ("example.org:8080", true),
            ("127.0.0.1:80", true),
            ("localhost:", true),          // port = *DIGIT
            ("", true),                    // RFC 9112 3.2: empty for no authority
            ("[::1]", true),
            ("[::1]:8080", true),
            ("[v1.fe80::a+en1]", true),    // IPvFuture
            ("xn--caf-dma.example", true),
            ("caf%C3%A9.example", true),
            ("a_b~c!$&'()*+,;=", true),
            ("exa mple.org", false),
            ("example.org:80a", false),
            ("example.org:80:80", false),
            ("user@example.org", false),   // no userinfo in Host
            ("example.org/path", false),
            ("[::1", false),
            ("[::1]x", false),
            ("[not-an-ip]", false),
            ("[::1]:8a", false),
            ("caf%C3", true),
            ("bad%4", false),
            ("bad%zz", false),
            ("tab\there", false),
            ("caf\u{e9}", false),          // raw UTF-8 is not a reg-name
        ];
        for (value, ok) in rows {
            assert_eq!(valid(value.as_bytes()), *ok, "{value:?}");
        }
    }

    #[test]
    fn field_lines_table() {
        // RFC 9112 3.2: 400 for an HTTP/1.1 request lacking Host, for more
        // than one Host line, for an invalid value; HTTP/1.0 may omit it
        use HostError::*;
        type Row = (bool, &'static [&'static [u8]], Result<(), HostError>);
        let rows: &[Row] = &[
            (true, &[b"a"], Ok(())),
            (true, &[], Err(Missing)),
            (false, &[], Ok(())),
            (true, &[b"a", b"a"], Err(Repeated)),
            (false, &[b"a", b"b"], Err(Repeated)),
            (true, &[b"a b"], Err(Invalid)),
            (false, &[b"a b"], Err(Invalid)),
        ];
        for (http11, values, want) in rows {
            assert_eq!(check(*http11, values), *want, "{http11} {values:?}");
        }
    }
}
