//! `rangeserve probe URL`: diagnose how any HTTP server handles byte ranges,
//! in the words of the quirk catalogue. A few dozen small requests at most
//! ([`run`]), each seen byte for byte by a raw HTTP/1.1 client ([`http`],
//! over TCP or rustls: [`tls`]); pure checks ([`analyze`]) turn what was
//! seen ([`observe`]) into PASS/WARN/FAIL lines and the catalogued quirks
//! they amount to ([`coverage`] says which quirks can be seen at all); a
//! [`report`] prints them with a verdict and the `rangeserve --quirk ...`
//! line that reproduces the server.

pub mod analyze;
#[cfg(feature = "cli")]
pub mod cli;
pub mod coverage;
pub mod http;
pub mod observe;
pub mod report;
pub mod run;
pub mod target;
pub mod tls;

use std::time::Duration;

pub use analyze::{CheckId, Status};
pub use report::Report;

/// How to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The most one request may take (connect, head and body); a body that
    /// stops for half of it is a stall.
    pub timeout: Duration,
    /// Which certificates to trust for https.
    pub trust: tls::Trust,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(10),
            trust: tls::Trust::System,
        }
    }
}

/// Why a probe could not run (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not one the probe can use.
    #[error(transparent)]
    Url(#[from] target::UrlError),
    /// No TLS client could be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// The server could not be judged.
    #[error("{url}: {source}")]
    Run {
        /// The URL.
        url: String,
        /// Why.
        source: run::RunError,
    },
}

/// Probe `url`.
pub async fn probe(url: &str, opts: &Options) -> Result<Report, ProbeError> {
    let target = target::Target::parse(url)?;
    let tls = match target.scheme {
        target::Scheme::Https => Some(tls::client_config(&opts.trust)?),
        target::Scheme::Http => None,
    };
    let shown = target.to_string();
    let client = http::Client::new(target, tls, opts.timeout);
    let (obs, requests) = run::run(&client).await.map_err(|source| ProbeError::Run {
        url: shown.clone(),
        source,
    })?;
    let basics = obs
        .response(observe::Step::Get)
        .map(report::Basics::of)
        .unwrap_or_default();
    Ok(Report {
        url: shown,
        basics,
        length: obs.length,
        findings: analyze::analyze(&obs),
        requests,
    })
}
