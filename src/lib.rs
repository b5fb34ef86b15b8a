//! rangeserve: an HTTP/1.1 file server that gets byte ranges exactly right
//! (RFC 9110 sections 13-15).
//!
//! The crate is the product; the `rangeserve` binary is a thin CLI over it.
//! A request flows: [`fs`] (resolve, confine, open) -> [`plan`] (decide,
//! pure, using [`rfc`]) -> [`render`] (the one place that writes status,
//! headers and the streaming [`body`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), rangeserve::StartError> {
//! let config = rangeserve::Config { port: 0, root: "fixtures".into(), ..Default::default() };
//! let server = rangeserve::Server::bind(config).await?;
//! println!("serving on {}", server.url());
//! let handle = server.spawn();
//! // ... talk to handle.url() ...
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

pub mod body;
pub mod cli;
pub mod config;
pub mod error;
pub mod fs;
pub mod handler;
pub mod hashcache;
pub mod healthcheck;
pub mod listing;
pub mod plan;
pub mod prehash;
pub mod quirks;
pub mod render;
pub mod rfc;
pub mod server;

pub use config::Config;
pub use server::{Server, ServerHandle, StartError};
