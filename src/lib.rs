//! rangeserve: an HTTP/1.1 file server that gets byte ranges exactly right
//! (RFC 9110 sections 13-15).
//!
//! The crate is the product; the `rangeserve` binary is a thin CLI over it.
//! A request flows: [`fs`] (resolve, confine, open) -> [`plan`] (decide,
//! pure, using [`rfc`]) -> [`render`] (the one place that writes status,
//! headers and the streaming [`body`]). Over an object store, [`origin`]
//! takes the place of [`fs`]; plan and render are the same.
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

pub mod access;
pub mod body;
pub mod builder;
pub mod cli;
pub mod config;
pub mod conn;
pub mod cors;
pub mod error;
pub mod filestate;
pub mod fs;
pub mod handler;
pub mod hashcache;
pub mod healthcheck;
pub mod listing;
pub mod origin;
pub mod plan;
pub mod prehash;
pub mod quirks;
pub mod render;
pub mod rfc;
pub mod server;
pub mod tls;
pub mod transport;

pub use builder::ServerBuilder;
pub use config::Config;
pub use server::{Server, ServerHandle, StartError};
