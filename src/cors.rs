//! CORS for browser clients (Fetch standard, "CORS protocol"): which
//! origins may read responses, the answer to a preflight, and the headers a
//! page's script may read, so that `fetch()` with a `Range` header can read a
//! `206` from another origin. Pure: header values in, header values out.

use axum::http::header::{
    HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};

/// Which origins may read responses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cors {
    /// No CORS headers: browsers keep responses from other origins' scripts.
    #[default]
    Off,
    /// Any origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// These origins only (`scheme://host[:port]`, compared exactly).
    Origins(Vec<String>),
}

/// Request headers a page may send cross-origin (beyond the safelisted).
pub const ALLOW_HEADERS: &str = "Range, If-Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, Rangeserve-Quirks";
/// Response headers a page's script may read (beyond the safelisted).
pub const EXPOSE_HEADERS: &str =
    "Content-Range, Accept-Ranges, Content-Length, ETag, Repr-Digest, Rangeserve-Quirks";
/// Methods allowed cross-origin.
pub const ALLOW_METHODS: &str = "GET, HEAD, OPTIONS";

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`,
    /// if that origin may read the response.
    fn allow_origin(&self, origin: Option<&[u8]>) -> Option<HeaderValue> {
        match self {
            Cors::Off => None,
            Cors::Any => Some(HeaderValue::from_static("*")),
            Cors::Origins(list) => {
                let origin = origin?;
                list.iter()
                    .any(|o| o.as_bytes() == origin)
                    .then(|| HeaderValue::from_bytes(origin).ok())
                    .flatten()
            }
        }
    }

    /// Whether the answer depends on the request's `Origin` (it must then
    /// say `Vary: Origin`, RFC 9110 12.5.5, so caches keep one per origin).
    fn varies(&self) -> bool {
        matches!(self, Cors::Origins(_))
    }

    /// `Vary: Origin` if the answer depends on it, and the
    /// `Access-Control-Allow-Origin` value if `origin` is allowed.
    fn start(
        &self,
        origin: Option<&[u8]>,
    ) -> (Vec<(HeaderName, HeaderValue)>, Option<HeaderValue>) {
        let mut out = Vec::new();
        if self.varies() {
            out.push((VARY, HeaderValue::from_static("Origin")));
        }
        (out, self.allow_origin(origin))
    }

    /// Headers for an ordinary response to a request with `origin`.
    pub fn response_headers(&self, origin: Option<&[u8]>) -> Vec<(HeaderName, HeaderValue)> {
        let (mut out, allow) = self.start(origin);
        if let Some(allow) = allow {
            out.push((ACCESS_CONTROL_ALLOW_ORIGIN, allow));
            out.push((
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            ));
        }
        out
    }

    /// If the request is a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) and CORS is on, the headers of its
    /// `204` answer; an origin not allowed gets none of the allow headers,
    /// and the browser refuses the real request.
    pub fn preflight(
        &self,
        is_options: bool,
        origin: Option<&[u8]>,
        request_method: Option<&[u8]>,
    ) -> Option<Vec<(HeaderName, HeaderValue)>> {
        if matches!(self, Cors::Off) || !is_options || origin.is_none() || request_method.is_none()
        {
            return None;
        }
        let (mut out, allow) = self.start(origin);
        if let Some(allow) = allow {
            out.push((ACCESS_CONTROL_ALLOW_ORIGIN, allow));
            out.push((
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            ));
            out.push((
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            ));
            out.push((ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600")));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(h: &[(HeaderName, HeaderValue)]) -> Vec<String> {
        h.iter()
            .map(|(n, v)| format!("{}: {}", n, v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn response_headers_table() {
        let list = Cors::Origins(vec!["http://a.test".into(), "https://b.test:8443".into()]);
        let expose = format!("access-control-expose-headers: {EXPOSE_HEADERS}");
        let rows: Vec<(&Cors, Option<&str>, Vec<String>)> = vec![
            (&Cors::Off, Some("http://a.test"), vec![]),
            (
                &Cors::Any,
                Some("http://x.test"),
                vec!["access-control-allow-origin: *".into(), expose.clone()],
            ),
            // a page must see the body of a same-origin request too; no Origin is fine
            (
                &Cors::Any,
                None,
                vec!["access-control-allow-origin: *".into(), expose.clone()],
            ),
            (
                &list,
                Some("http://a.test"),
                vec![
                    "vary: Origin".into(),
                    "access-control-allow-origin: http://a.test".into(),
                    expose.clone(),
                ],
            ),
            (&list, Some("http://a.test:80"), vec!["vary: Origin".into()]),
            (&list, Some("http://evil.test"), vec!["vary: Origin".into()]),
            (&list, None, vec!["vary: Origin".into()]),
        ];
        for (cors, origin, want) in rows {
            let got = names(&cors.response_headers(origin.map(str::as_bytes)));
            assert_eq!(got, want, "{cors:?} {origin:?}");
        }
    }

    #[test]
    fn preflight_table() {
        let list = Cors::Origins(vec!["http://a.test".into()]);
        let o = Some(&b"http://a.test"[..]);
        let m = Some(&b"GET"[..]);
        assert_eq!(Cors::Off.preflight(true, o, m), None);
        assert_eq!(Cors::Any.preflight(false, o, m), None, "not OPTIONS");
        assert_eq!(Cors::Any.preflight(true, None, m), None, "no Origin");
        assert_eq!(Cors::Any.preflight(true, o, None), None, "plain OPTIONS");
        let any = names(&Cors::Any.preflight(true, o, m).unwrap());
        assert!(any.contains(&"access-control-allow-origin: *".to_string()));
        assert!(any.contains(&format!("access-control-allow-headers: {ALLOW_HEADERS}")));
        assert!(any.contains(&"access-control-allow-methods: GET, HEAD, OPTIONS".to_string()));
        let listed = names(&list.preflight(true, o, m).unwrap());
        assert!(listed.contains(&"access-control-allow-origin: http://a.test".to_string()));
        assert!(listed.contains(&"vary: Origin".to_string()));
        let refused = names(&list.preflight(true, Some(b"http://b.test"), m).unwrap());
        assert_eq!(refused, vec!["vary: Origin".to_string()]);
    }
}
