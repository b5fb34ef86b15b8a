//! The probe's requests, in order, and the decisions between them (the
//! length learnt, the tag to send back, whether a second window is needed).
//! All the I/O of a probe is here; judging is [`super::analyze`]'s.

use std::time::Duration;

use super::http::{Client, ExchangeError, Method, Request, Response};
use super::observe::{Exchange, Observations, Step};
use crate::rfc::etag::EntityTag;
use crate::rfc::range::ContentRange;

/// Bytes of the window range `bytes=0-4095`, and the most body bytes read
/// from any answer (a server that ignores Range is cut off there).
pub const WINDOW: u64 = 4096;
/// Bytes of the small ranges.
pub const SMALL: u64 = 16;
/// The most requests one probe makes, retries included.
pub const MAX_REQUESTS: u32 = 24;
/// The most 503 + Retry-After answers retried.
pub const MAX_RETRIES: u32 = 5;
/// The longest Retry-After honoured (longer ones are waited for this long).
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// The tag sent as a stale If-Range: no server sends it.
pub const STALE_TAG: &str = "\"rangeserve-probe-stale\"";
/// Body bytes read from answers whose body only needs to be recognised.
const PEEK: usize = 64;

/// Why the probe could not judge the server at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The first request got no answer (unreachable, TLS, timeout...).
    #[error("{0}")]
    Unreachable(ExchangeError),
    /// The URL redirects; the probe does not follow.
    #[error("{status} redirect to {location}; probe that URL instead")]
    Redirect {
        /// 301, 302, 303, 307, 308.
        status: u16,
        /// The Location header.
        location: String,
    },
    /// The GET answered neither 2xx nor a redirect.
    #[error("GET answered {status} {reason}; nothing to probe")]
    Status {
        /// The status.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
}

/// The probe in progress.
struct Run<'a> {
    client: &'a Client,
    obs: Observations,
    requests: u32,
    answered: bool,
    /// The error of the last step without an answer.
    last_error: Option<ExchangeError>,
}

impl Run<'_> {
    /// Take `step`: send, retry 503 + Retry-After a bounded number of times, record.
    async fn step(
        &mut self,
        step: Step,
        method: Method,
        range: Option<String>,
        condition: Option<(&'static str, String)>,
        want: usize,
    ) -> Option<&Response> {
        if self.requests >= MAX_REQUESTS {
            return None;
        }
        let mut headers = Vec::new();
        if let Some(r) = &range {
            headers.push(("Range", r.clone()));
        }
        if let Some((name, v)) = &condition {
            headers.push((*name, v.clone()));
        }
        let req = Request {
            method,
            headers,
            want,
        };
        let outcome = loop {
            self.requests += 1;
            let out = self.client.exchange(&req).await;
            let retry_after = out.as_ref().ok().and_then(|r| {
                (r.status == 503)
                    .then(|| r.header("retry-after"))
                    .flatten()
                    .map(retry_delay)
            });
            let retries = self.obs.leading_503 + self.obs.later_503;
            match retry_after {
                Some(wait) if retries < MAX_RETRIES && self.requests < MAX_REQUESTS => {
                    if self.answered {
                        self.obs.later_503 += 1;
                    } else {
                        self.obs.leading_503 += 1;
                    }
                    tokio::time::sleep(wait).await;
                }
                _ => break out,
            }
        };
        let outcome = match outcome {
            Ok(r) => {
                self.answered = true;
                Ok(r)
            }
            Err(e) => {
                let line = e.to_string();
                self.last_error = Some(e);
                Err(line)
            }
        };
        self.obs.exchanges.push(Exchange {
            step,
            range,
            condition,
            outcome,
        });
        self.obs.exchanges.last().and_then(Exchange::response)
    }
}

/// Seconds of a Retry-After value (a date counts as one second), capped.
fn retry_delay(v: &str) -> Duration {
    v.trim()
        .parse::<u64>()
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .min(MAX_RETRY_WAIT)
}

/// Probe the client's target; returns what was seen and the number of requests.
pub async fn run(client: &Client) -> Result<(Observations, u32), RunError> {
    let mut run = Run {
        client,
        obs: Observations::default(),
        requests: 0,
        answered: false,
        last_error: None,
    };
    // HEAD first: cheap, and a redirect or an unreachable host shows here
    let head = run
        .step(Step::Head, Method::Head, None, None, 0)
        .await
        .cloned();
    let head_len = match head {
        Some(h) => {
            redirect(&h)?;
            h.header("content-length")
                .and_then(|v| v.parse::<u64>().ok())
        }
        None => match run.last_error.take() {
            // no connection at all: nothing else will fare better
            Some(
                e @ (ExchangeError::Resolve { .. }
                | ExchangeError::Connect { .. }
                | ExchangeError::Tls { .. }),
            ) => return Err(RunError::Unreachable(e)),
            _ => None,
        },
    };
    let get = run
        .step(Step::Get, Method::Get, None, None, WINDOW as usize)
        .await
        .cloned();
    let Some(get) = get else {
        let e = run.last_error.take().unwrap_or(ExchangeError::Closed);
        return Err(RunError::Unreachable(e));
    };
    redirect(&get)?;
    if !(200..300).contains(&get.status) {
        return Err(RunError::Status {
            status: get.status,
            reason: get.reason.clone(),
        });
    }
    // the length: GET's Content-Length, a whole body read, HEAD's, or later
    // the window's Content-Range
    let mut length = match get.framing {
        super::http::Framing::Length(n) => Some(n),
        _ if get.end == super::http::BodyEnd::Complete => Some(get.body.len() as u64),
        _ => head_len,
    };
    if length != Some(0) {
        let window = run
            .step(
                Step::Window,
                Method::Get,
                Some(format!("bytes=0-{}", WINDOW - 1)),
                None,
                WINDOW as usize,
            )
            .await
            .cloned();
        if let Some(w) = &window {
            if length.is_none() {
                if let Some(Ok(ContentRange::Bytes { length: n, .. })) =
                    w.header("content-range").map(ContentRange::parse)
                {
                    length = Some(n);
                }
            }
            // cut short: once more from inside the cut, to tell a cut after
            // N bytes from a cut at a file offset
            if w.status == 206 && w.end == super::http::BodyEnd::Short {
                let k = w.body.len() as u64;
                let s = (k / 2).max(1);
                if length.is_none_or(|l| s < l) {
                    run.step(
                        Step::Window2,
                        Method::Get,
                        Some(format!("bytes={s}-{}", s + WINDOW - 1)),
                        None,
                        WINDOW as usize,
                    )
                    .await;
                }
            }
        }
    }
    run.obs.length = length;
    let len = length.unwrap_or(0);
    // the range the If-Range checks ask for: 16 bytes mid-window
    let mid = (len >= 2).then(|| {
        let m = len.min(WINDOW) / 2;
        format!("bytes={m}-{}", (m + SMALL - 1).min(len - 1))
    });
    if len >= 1 {
        if let Some(m) = &mid {
            run.step(Step::Mid, Method::Get, Some(m.clone()), None, PEEK)
                .await;
        }
        let open = if len > 2 * SMALL {
            len - SMALL
        } else {
            len / 2
        };
        run.step(
            Step::Open,
            Method::Get,
            Some(format!("bytes={open}-")),
            None,
            PEEK,
        )
        .await;
        run.step(
            Step::Suffix,
            Method::Get,
            Some(format!("bytes=-{SMALL}")),
            None,
            PEEK,
        )
        .await;
        if len >= 3 {
            run.step(
                Step::Multi,
                Method::Get,
                Some("bytes=0-0,-1".into()),
                None,
                2048,
            )
            .await;
        }
    }
    if length.is_some() {
        run.step(
            Step::Unsatisfiable,
            Method::Get,
            Some(format!("bytes={len}-")),
            None,
            0,
        )
        .await;
    }
    // validators as last seen (a server whose tags change shows it here)
    let latest = |name: &str, obs: &Observations| -> Option<String> {
        obs.exchanges
            .iter()
            .rev()
            .filter_map(Exchange::response)
            .filter(|r| (200..300).contains(&r.status))
            .find_map(|r| r.header(name).map(str::to_string))
    };
    let ir_range = mid.clone().unwrap_or_else(|| "bytes=0-0".into());
    if len >= 1 {
        let strong = latest("etag", &run.obs)
            .and_then(|t| EntityTag::parse(&t).ok())
            .filter(|t| !t.weak);
        if let Some(t) = &strong {
            run.step(
                Step::IfRangeTag,
                Method::Get,
                Some(ir_range.clone()),
                Some(("If-Range", t.to_string())),
                PEEK,
            )
            .await;
        }
        if let Some(date) = latest("last-modified", &run.obs) {
            run.step(
                Step::IfRangeDate,
                Method::Get,
                Some(ir_range.clone()),
                Some(("If-Range", date)),
                PEEK,
            )
            .await;
        }
        run.step(
            Step::IfRangeStale,
            Method::Get,
            Some(ir_range.clone()),
            Some(("If-Range", STALE_TAG.into())),
            PEEK,
        )
        .await;
        if strong.is_some() {
            let weak = latest("etag", &run.obs)
                .and_then(|t| EntityTag::parse(&t).ok())
                .map(|t| EntityTag { weak: true, ..t });
            if let Some(w) = weak {
                run.step(
                    Step::IfRangeWeak,
                    Method::Get,
                    Some(ir_range.clone()),
                    Some(("If-Range", w.to_string())),
                    PEEK,
                )
                .await;
            }
        }
    }
    if let Some(t) = latest("etag", &run.obs).filter(|t| EntityTag::parse(t).is_ok()) {
        run.step(
            Step::IfNoneMatch,
            Method::Get,
            None,
            Some(("If-None-Match", t)),
            0,
        )
        .await;
    }
    let requests = run.requests;
    Ok((run.obs, requests))
}

fn redirect(r: &Response) -> Result<(), RunError> {
    if matches!(r.status, 301 | 302 | 303 | 307 | 308) {
        return Err(RunError::Redirect {
            status: r.status,
            location: r
                .header("location")
                .unwrap_or("(no Location)")
                .chars()
                .take(500)
                .collect(),
        });
    }
    Ok(())
}
