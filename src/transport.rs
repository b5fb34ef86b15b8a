//! What a connection speaks. On a plain port, HTTP/1.1 or HTTP/2 with prior
//! knowledge (h2c, RFC 9113 3.3): a client that starts with the HTTP/2
//! connection preface gets HTTP/2. Over TLS, ALPN decides (see [`crate::tls`]).
//!
//! Telling them apart means reading the first bytes; [`Rewind`] gives them
//! back to whichever protocol reads next.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2.
    Http2,
}

/// What the first bytes of a connection say, if they say enough (pure):
/// `Some(Http2)` for the whole preface, `Some(Http1)` as soon as a byte
/// differs from it, `None` for a strict prefix of it.
pub fn classify(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Whether the first byte a client sent to a TLS port starts a plaintext
/// HTTP request (a method token: ASCII letters) rather than a TLS record (a
/// ClientHello starts with content type 22, handshake). Pure.
pub fn is_plain_http_on_tls(first: u8) -> bool {
    first.is_ascii_alphabetic()
}

/// The answer to plaintext HTTP on a TLS port (what nginx does with its
/// 497): a clear 400 saying which scheme to use, then the connection is
/// closed. A `--healthcheck http://...` of a TLS port sees a live server.
pub const PLAIN_ON_TLS_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 47\r\n\
Connection: close\r\n\
\r\n\
400 Bad Request: this port speaks HTTPS (TLS)\r\n";

/// Read what `io` has until it tells HTTP/1 from HTTP/2 prior knowledge;
/// returns the protocol and the bytes read, to be replayed with [`Rewind`].
/// A connection closed before saying anything is `Ok(None)`.
///
/// Each read takes up to [`SNIFF_BYTES`], not just the preface's 24: the
/// first is usually a whole request head, which the protocol then reads
/// from the replay rather than with a second `recv`.
pub async fn sniff<I: AsyncRead + Unpin>(io: &mut I) -> io::Result<Option<(Protocol, Bytes)>> {
    let mut buf = Vec::with_capacity(SNIFF_BYTES);
    loop {
        // the preface decides within 24 bytes, so the buffer never grows
        let n = io.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(match buf.is_empty() {
                true => None,
                // a few bytes then EOF: let HTTP/1 answer (or not) as it does
                false => Some((Protocol::Http1, Bytes::from(buf))),
            });
        }
        if let Some(p) = classify(&buf) {
            return Ok(Some((p, Bytes::from(buf))));
        }
    }
}

/// The most [`sniff`] reads at once: a typical request head, browsers' too.
pub const SNIFF_BYTES: usize = 2048;

/// A stream whose first bytes were already read: they are read again first.
pub struct Rewind<I> {
    prefix: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    /// `prefix` is what was read from `inner` so far.
    pub fn new(prefix: Bytes, inner: I) -> Self {
        Rewind { prefix, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_on_a_tls_port_is_told_from_a_client_hello() {
        for method in ["GET", "HEAD", "POST", "OPTIONS", "PRI"] {
            assert!(is_plain_http_on_tls(method.as_bytes()[0]), "{method}");
        }
        // TLS record content types: handshake (a ClientHello), alert, ...
        for record in [22u8, 21, 20, 23] {
            assert!(!is_plain_http_on_tls(record));
        }
        // the announced length is the body's
        let text = std::str::from_utf8(PLAIN_ON_TLS_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn classify_table() {
        // RFC 9113 3.4: the client preface starts with exactly these 24 octets
        use Protocol::*;
        #[rustfmt::skip]
        let rows: &[(&[u8], Option<Protocol>)] = &[
            (b"GET / HTTP/1.1\r\n", Some(Http1)),
            (b"G", Some(Http1)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(Http2)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04", Some(Http2)),
            (b"PRI * HTTP/2.0\r\n", None),
            (b"P", None),
            (b"", None),
            (b"PRI * HTTP/1.1\r\n", Some(Http1)),
            (b"POST / HTTP/1.1\r\n", Some(Http1)),
        ];
        for (first, want) in rows {
            assert_eq!(
                classify(first),
                *want,
                "{:?}",
                String::from_utf8_lossy(first)
            );
        }
    }

    /// What the client sent so far is taken in one read, past the
    /// preface's 24 bytes, and all of it is replayed (HTTP/1 and HTTP/2).
    #[tokio::test]
    async fn sniff_takes_the_head_in_one_read() {
        let head = format!(
            "GET /a HTTP/1.1\r\nHost: a\r\nUser-Agent: {}\r\n\r\n",
            "x".repeat(300)
        );
        let mut h2 = H2_PREFACE.to_vec();
        h2.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
        for (sent, protocol) in [
            (head.as_bytes(), Protocol::Http1),
            (&h2[..], Protocol::Http2),
        ] {
            let (mut client, mut server) = tokio::io::duplex(4096);
            tokio::io::AsyncWriteExt::write_all(&mut client, sent)
                .await
                .unwrap();
            let (p, prefix) = sniff(&mut server).await.unwrap().unwrap();
            assert_eq!(p, protocol);
            assert_eq!(&prefix[..], sent, "one read took all that was sent");
            drop(client);
            let mut all = Vec::new();
            Rewind::new(prefix, server)
                .read_to_end(&mut all)
                .await
                .unwrap();
            assert_eq!(all, sent);
        }
    }

    #[tokio::test]
    async fn rewind_replays_what_sniff_read() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        drop(client);
        let mut server = server;
        let (p, prefix) = sniff(&mut server).await.unwrap().unwrap();
        assert_eq!(p, Protocol::Http1);
        let mut all = Vec::new();
        Rewind::new(prefix, server)
            .read_to_end(&mut all)
            .await
            .unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\n");
    }
}
