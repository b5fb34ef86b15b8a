//! A probe's result for people and programs: the basics seen, one line per
//! check, the quirks named in the catalogue's own words, the verdict and the
//! `rangeserve --quirk ...` line that reproduces the server; as text or as
//! one JSON document whose field names are a documented contract (README,
//! "Probe a server"; [`JSON_VERSION`] changes if a field does).

use serde_json::{json, Value};

use super::analyze::{Check, Findings, Status};
use super::coverage::{self, Severity};
use super::http::{Framing, Response};
use crate::quirks::{catalogue, Quirk};
use crate::rfc::etag::EntityTag;

/// The version of the JSON document's shape.
pub const JSON_VERSION: u32 = 1;

/// What the plain GET said about the representation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Basics {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Content-Length, if sent.
    pub content_length: Option<u64>,
    /// Transfer-Encoding, if sent.
    pub transfer_encoding: Option<String>,
    /// Accept-Ranges, if sent.
    pub accept_ranges: Option<String>,
    /// ETag as sent.
    pub etag: Option<String>,
    /// `strong`, `weak`, `malformed` or `absent`.
    pub etag_kind: &'static str,
    /// Last-Modified as sent.
    pub last_modified: Option<String>,
    /// Repr-Digest as sent.
    pub repr_digest: Option<String>,
    /// Content-Type as sent.
    pub content_type: Option<String>,
    /// Server as sent.
    pub server: Option<String>,
}

impl Basics {
    /// The basics of `get`.
    pub fn of(get: &Response) -> Basics {
        let h = |n: &str| {
            get.header(n)
                .map(|v| v.chars().take(200).collect::<String>())
        };
        let etag = h("etag");
        let etag_kind = match etag.as_deref().map(EntityTag::parse) {
            None => "absent",
            Some(Ok(t)) if t.weak => "weak",
            Some(Ok(_)) => "strong",
            Some(Err(_)) => "malformed",
        };
        Basics {
            status: get.status,
            reason: get.reason.chars().take(100).collect(),
            content_length: match get.framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
            transfer_encoding: h("transfer-encoding"),
            accept_ranges: h("accept-ranges"),
            etag,
            etag_kind,
            last_modified: h("last-modified"),
            repr_digest: h("repr-digest"),
            content_type: h("content-type"),
            server: h("server"),
        }
    }
}

/// A finished probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The URL probed.
    pub url: String,
    /// What the plain GET said.
    pub basics: Basics,
    /// The representation's length as settled by the probe.
    pub length: Option<u64>,
    /// The checks and the quirks they named.
    pub findings: Findings,
    /// Requests made, retries included.
    pub requests: u32,
}

impl Report {
    /// Resuming is safe: no check failed.
    pub fn safe(&self) -> bool {
        self.findings.safe()
    }

    /// The quirks detected.
    pub fn quirks(&self) -> &[Quirk] {
        &self.findings.quirks
    }

    /// The check with this id.
    pub fn check(&self, id: super::analyze::CheckId) -> &Check {
        self.findings
            .checks
            .iter()
            .find(|c| c.id == id)
            .expect("every check is reported")
    }

    /// The process exit status: 0 when resuming is safe, 1 when not.
    pub fn exit_code(&self) -> u8 {
        if self.safe() {
            0
        } else {
            1
        }
    }

    /// One sentence: safe or not, and why.
    pub fn verdict(&self) -> String {
        let count = |s: Status| {
            self.findings
                .checks
                .iter()
                .filter(|c| c.status == s)
                .count()
        };
        if self.safe() {
            match count(Status::Warn) {
                0 => "SAFE: resuming with Range + If-Range works as RFC 9110 says".into(),
                n => format!(
                    "SAFE: resuming with Range + If-Range works ({n} warning{}: see WARN)",
                    if n == 1 { "" } else { "s" }
                ),
            }
        } else {
            let why: Vec<String> = self
                .findings
                .checks
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(|c| match c.quirk {
                    Some(q) => q.name().to_string(),
                    None => c.id.name().to_string(),
                })
                .collect();
            format!(
                "UNSAFE: resuming from this server can fail or corrupt data ({})",
                why.join(", ")
            )
        }
    }

    /// The command line that serves a file the way this server does.
    pub fn reproduce(&self) -> String {
        if self.findings.quirks.is_empty() {
            return "rangeserve DIR".into();
        }
        let specs: Vec<String> = self.findings.quirks.iter().map(Quirk::to_string).collect();
        format!("rangeserve --quirk {} DIR", specs.join(","))
    }

    /// Checks that failed or warned without being a catalogued quirk.
    fn uncatalogued(&self) -> Vec<&Check> {
        self.findings
            .checks
            .iter()
            .filter(|c| matches!(c.status, Status::Fail | Status::Warn) && c.quirk.is_none())
            .collect()
    }

    /// The report as text, one item per line.
    pub fn text(&self) -> String {
        let b = &self.basics;
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        let mut out = format!("probe {}\n", self.url);
        let mut basic = |name: &str, value: String| {
            out.push_str(&format!("  {name:<17}{value}\n"));
        };
        basic("status", format!("{} {}", b.status, b.reason));
        basic(
            "content-length",
            match (b.content_length, &b.transfer_encoding) {
                (Some(n), _) => n.to_string(),
                (None, Some(te)) => format!("(none; Transfer-Encoding: {te})"),
                (None, None) => "(none)".into(),
            },
        );
        basic("accept-ranges", or_none(&b.accept_ranges));
        basic(
            "etag",
            match &b.etag {
                Some(t) => format!("{t} ({})", b.etag_kind),
                None => "(none)".into(),
            },
        );
        basic("last-modified", or_none(&b.last_modified));
        basic("repr-digest", or_none(&b.repr_digest));
        basic("content-type", or_none(&b.content_type));
        basic("server", or_none(&b.server));
        out.push_str("checks\n");
        for c in &self.findings.checks {
            out.push_str(&format!(
                "  {} {:<15}{}{}\n",
                c.status.name(),
                c.id.name(),
                c.detail,
                c.quirk
                    .map(|q| format!(" [{}]", q.name()))
                    .unwrap_or_default()
            ));
        }
        if self.findings.quirks.is_empty() {
            out.push_str("quirks: none detected\n");
        } else {
            out.push_str(&format!("quirks: {}\n", self.quirk_list()));
            for q in &self.findings.quirks {
                if let Some(info) = catalogue::info(q.name()) {
                    out.push_str(&format!("  {q}: {}\n", info.behaviour));
                    out.push_str(&format!("    a robust client: {}\n", info.client));
                }
            }
        }
        let other = self.uncatalogued();
        if !other.is_empty() {
            let ids: Vec<&str> = other.iter().map(|c| c.id.name()).collect();
            out.push_str(&format!("not in the catalogue: {}\n", ids.join(", ")));
        }
        out.push_str(&format!("verdict: {}\n", self.verdict()));
        out.push_str(&format!("reproduce: {}\n", self.reproduce()));
        out.push_str(&format!("requests: {}\n", self.requests));
        out
    }

    fn quirk_list(&self) -> String {
        let names: Vec<String> = self.findings.quirks.iter().map(Quirk::to_string).collect();
        names.join(", ")
    }

    /// The report as one JSON document.
    pub fn json(&self) -> Value {
        let b = &self.basics;
        let checks: Vec<Value> = self
            .findings
            .checks
            .iter()
            .map(|c| {
                json!({
                    "id": c.id.name(),
                    "status": c.status.name().to_ascii_lowercase(),
                    "detail": c.detail,
                    "quirk": c.quirk.map(|q| q.name()),
                })
            })
            .collect();
        let quirks: Vec<Value> = self
            .findings
            .quirks
            .iter()
            .map(|q| {
                json!({
                    "name": q.name(),
                    "spec": q.to_string(),
                    "severity": match coverage::of(q).severity {
                        Severity::Warn => "warn",
                        Severity::Fail => "fail",
                    },
                    "behaviour": catalogue::info(q.name()).map(|i| i.behaviour),
                    "client": catalogue::info(q.name()).map(|i| i.client),
                })
            })
            .collect();
        json!({
            "version": JSON_VERSION,
            "url": self.url,
            "basics": {
                "status": b.status,
                "reason": b.reason,
                "content_length": b.content_length,
                "transfer_encoding": b.transfer_encoding,
                "accept_ranges": b.accept_ranges,
                "etag": b.etag,
                "etag_kind": b.etag_kind,
                "last_modified": b.last_modified,
                "repr_digest": b.repr_digest,
                "content_type": b.content_type,
                "server": b.server,
            },
            "length": self.length,
            "checks": checks,
            "quirks": quirks,
            "uncatalogued": self.uncatalogued().iter().map(|c| c.id.name()).collect::<Vec<_>>(),
            "safe": self.safe(),
            "verdict": self.verdict(),
            "reproduce": self.reproduce(),
            "requests": self.requests,
        })
    }
}
