//! S3's stored full-object SHA-256: where an object was uploaded with a
//! SHA-256 checksum of its whole content (S3 verifies it on upload and
//! reports it as type `FULL_OBJECT`), that checksum *is* rangeserve's
//! digest, and the object need not be read to hash it.
//!
//! object_store 0.12 has no call that asks a store for checksums, so this
//! module sends the one request that does: a `HEAD` of the object with
//! `x-amz-checksum-mode: ENABLED`, pinned to the version served
//! (`If-Match` its ETag, `versionId` its version), signed by the crate's own
//! SigV4 signer ([`AwsAuthorizer`]) with the store's credential provider and
//! sent through the crate's HTTP client, at the URL the crate itself uses
//! for the object. Anything else (no checksum, a composite one, another
//! algorithm, an error, S3 Express buckets) means "not known": the object is
//! hashed by reading it, as for any other store.

use std::time::Duration;

use axum::http::{Method, Request};
use base64::Engine as _;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{
    ClientConfigKey, ClientOptions, HttpClient, HttpConnector as _, HttpRequestBody,
    ReqwestConnector,
};
use object_store::path::Path;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::ObjectMeta;
use crate::hashcache::Digest;

/// How S3 encodes an object key in its URL path: RFC 3986's unreserved
/// characters and `/` as they are (the crate's own set).
const KEY_ENCODE_SET: AsciiSet = NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The SHA-256 a `HEAD` with checksum mode reported, if it is a full-object
/// one (pure): `x-amz-checksum-sha256` (base64 of 32 bytes) with
/// `x-amz-checksum-type` `FULL_OBJECT` or absent (a single-part upload, on
/// stores that predate the header). A composite checksum (a checksum of
/// the parts' checksums, `...-N`) is not the content's SHA-256.
pub fn full_object_sha256(sha256: Option<&str>, kind: Option<&str>) -> Option<Digest> {
    if !matches!(kind, None | Some("FULL_OBJECT")) {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sha256?.trim())
        .ok()?;
    bytes.try_into().ok()
}

/// The URL of `path` under the bucket's endpoint (pure), as the crate
/// builds it: path-style `ENDPOINT/BUCKET/KEY` unless virtual-hosted.
pub fn object_url(bucket_endpoint: &str, path: &Path) -> String {
    format!(
        "{}/{}",
        bucket_endpoint.trim_end_matches('/'),
        utf8_percent_encode(path.as_ref(), &KEY_ENCODE_SET)
    )
}

/// Asks S3 for stored checksums. See the module docs.
#[derive(Debug)]
pub struct S3Checksums {
    s3: AmazonS3,
    client: HttpClient,
    bucket_endpoint: String,
    region: String,
}

impl S3Checksums {
    /// For the store of `url` (`s3://BUCKET/...`) that `builder` built as
    /// `s3`; `None` where this cannot ask: another form of URL, S3 Express
    /// buckets (whose requests use session credentials).
    pub fn new(url: &url::Url, builder: &AmazonS3Builder, s3: &AmazonS3) -> Option<S3Checksums> {
        let config = |key| builder.get_config_value(&key);
        let on = |v: Option<String>| v.is_some_and(|v| v == "true" || v == "1");
        if on(config(AmazonS3ConfigKey::S3Express)) || !matches!(url.scheme(), "s3" | "s3a") {
            return None;
        }
        // the builder reads the bucket from the URL only when it builds
        let bucket = url.host_str()?;
        let region = config(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted = on(config(AmazonS3ConfigKey::VirtualHostedStyleRequest));
        let bucket_endpoint = match (config(AmazonS3ConfigKey::Endpoint), virtual_hosted) {
            (Some(endpoint), true) => endpoint,
            (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let allow_http = on(config(AmazonS3ConfigKey::Client(
            ClientConfigKey::AllowHttp,
        )));
        let options = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10));
        let client = ReqwestConnector::default().connect(&options).ok()?;
        Some(S3Checksums {
            s3: s3.clone(),
            client,
            bucket_endpoint,
            region,
        })
    }

    /// The full-object SHA-256 S3 keeps for version `meta` of `path`, if
    /// any (see the module docs); `None` on any failure.
    pub async fn sha256(&self, path: &Path, meta: &ObjectMeta) -> Option<Digest> {
        let mut url = object_url(&self.bucket_endpoint, path);
        if let Some(version) = &meta.version.version {
            url.push_str("?versionId=");
            url.push_str(&utf8_percent_encode(version, NON_ALPHANUMERIC).to_string());
        }
        let mut request = Request::builder()
            .method(Method::HEAD)
            .uri(&url)
            .header("x-amz-checksum-mode", "ENABLED");
        if let Some(etag) = &meta.version.etag {
            request = request.header("if-match", etag);
        }
        let mut request = request.body(HttpRequestBody::empty()).ok()?;
        let credential = match self.s3.credentials().get_credential().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "no credentials to ask for a stored checksum");
                return None;
            }
        };
        AwsAuthorizer::new(&credential, "s3", &self.region).authorize(&mut request, None);
        let response = match self.client.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%url, error = %e, "stored checksum: HEAD failed");
                return None;
            }
        };
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
        let size = header("content-length").and_then(|v| v.parse::<u64>().ok());
        if !response.status().is_success() || size != Some(meta.size) {
            tracing::debug!(%url, status = %response.status(), "stored checksum: not this version");
            return None;
        }
        full_object_sha256(
            header("x-amz-checksum-sha256"),
            header("x-amz-checksum-type"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_object_sha256_is_the_content_digest() {
        let digest: Digest = std::array::from_fn(|i| i as u8);
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        let rows: [(Option<&str>, Option<&str>, Option<Digest>); 8] = [
            (Some(&b64), Some("FULL_OBJECT"), Some(digest)),
            // a single-part upload on a store without the type header
            (Some(&b64), None, Some(digest)),
            (Some(&b64), Some("COMPOSITE"), None),
            (Some(&format!("{b64}-3")), None, None),
            (Some("AAAA"), Some("FULL_OBJECT"), None), // not 32 bytes
            (Some("not base64!"), None, None),
            (None, Some("FULL_OBJECT"), None),
            (None, None, None),
        ];
        for (sha, kind, want) in rows {
            assert_eq!(full_object_sha256(sha, kind), want, "{sha:?} {kind:?}");
        }
    }

    #[test]
    fn object_urls_are_the_crates() {
        let path = Path::parse("pre/a b/c~d+e.bin").unwrap();
        assert_eq!(
            object_url("http://127.0.0.1:9000/bucket/", &path),
            "http://127.0.0.1:9000/bucket/pre/a%20b/c~d%2Be.bin"
        );
    }
}
