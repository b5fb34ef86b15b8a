//! rangeserve: an HTTP/1.1 and HTTP/2 file server that gets byte ranges
//! exactly right (RFC 9110 sections 13-15).
//!
//! The crate is the product; the `rangeserve` binary is a thin CLI over it.
//! A request flows: `fs` (resolve, confine, open) -> `plan` (decide, pure,
//! using [`rfc`]) -> `render` (the one place that writes status, headers and
//! the streaming body). The public API is the [`builder`] and the
//! [`ServerHandle`] it spawns, the options ([`config`], [`cors`], [`tls`]),
//! the request [`journal`], the [`quirks`] catalogue, the storage seam
//! [`origin`] (an object store takes the place of the directory: plan and
//! render are the same) and the pure [`rfc`] parsers; the rest is internal.
//!
//! As a test fixture (see [`builder`] for every option):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rangeserve::StartError> {
//! use std::io::{Read, Write};
//!
//! let server = rangeserve::Server::builder()
//!     .root(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
//!     .bind("127.0.0.1:0")
//!     .spawn()
//!     .await?;
//! let addr = server.local_addr();
//! let response = tokio::task::spawn_blocking(move || {
//!     let mut tcp = std::net::TcpStream::connect(addr).unwrap();
//!     tcp.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n").unwrap();
//!     let mut response = String::new();
//!     tcp.read_to_string(&mut response).unwrap();
//!     response
//! })
//! .await
//! .unwrap();
//! assert!(response.starts_with("HTTP/1.1 206 Partial Content\r\n"));
//! assert!(response.ends_with("\r\n\r\nHello"));
//! server.shutdown().await;
//! # Ok(()) }
//! ```

// The public API: what a dependent uses (the builder and its handle, the
// options, the journal, the errors, and the pure RFC parsers, useful on
// their own).
pub mod builder;
pub mod config;
pub mod cors;
pub mod journal;
pub mod origin;
pub mod quirks;
pub mod rfc;
pub mod tls;

// Internals: `#[doc(hidden)] pub` only where the binary, the fuzz targets or
// the tests reach them; they may change in any release.
mod access;
mod body;
#[doc(hidden)]
#[cfg(feature = "cli")]
pub mod cli;
mod coalesce;
#[doc(hidden)]
pub mod conn;
#[doc(hidden)]
pub mod error;
mod filestate;
#[doc(hidden)]
pub mod fs;
#[doc(hidden)]
pub mod h1;
mod handler;
#[doc(hidden)]
pub mod hashcache;
#[doc(hidden)]
pub mod healthcheck;
mod listing;
mod persist;
#[doc(hidden)]
pub mod plan;
mod prehash;
#[doc(hidden)] // `rangeserve probe URL`, used through the command line
pub mod probe;
mod render;
#[doc(hidden)]
pub mod server;
mod transport;

pub use builder::ServerBuilder;
pub use config::Config;
pub use journal::JournalEntry;
pub use server::{Server, ServerHandle, StartError, TlsReloader};
