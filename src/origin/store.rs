//! [`Origin`] over the `object_store` crate (Apache Arrow's): S3 and
//! S3-compatible stores, Google Cloud Storage, Azure Blob Storage, and, for
//! tests, its in-memory and local-filesystem stores.
//!
//! Credentials and endpoints come from the standard environment through the
//! crate's `from_env` builders (`AWS_*` including `AWS_ENDPOINT_URL` and
//! `AWS_ALLOW_HTTP`, `GOOGLE_*`, `AZURE_*`). Retries are bounded here (a
//! few, within seconds): a client waiting on a request is better served by a
//! prompt 503 with Retry-After than by minutes of backoff.
//!
//! Every read is pinned: `if_match` carries the ETag of the version the
//! response describes (and `version` its version id, where the store keeps
//! versions), and the metadata that comes back with the bytes is checked
//! against it as well, so a store that ignored the condition still cannot
//! slip another version's bytes in.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, RetryConfig};

use super::checksum::S3Checksums;
use super::{ByteStream, Key, Listed, ObjectMeta, Origin, OriginError, StoreVersion};

/// Why a store URL cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum StoreUrlError {
    /// Not a URL of a store we serve from.
    #[error("{0:?} is not an s3://, gs:// or az:// URL")]
    Scheme(String),
    /// The store's builder refused the URL or the environment.
    #[error("{url}: {source}")]
    Build {
        /// The URL given.
        url: String,
        /// Why.
        source: object_store::Error,
    },
}

/// An object store and the key prefix served from it.
pub struct StoreOrigin {
    store: Arc<dyn ObjectStore>,
    /// Where the store is S3: how to ask it for stored checksums.
    checksums: Option<S3Checksums>,
    /// The prefix, without leading or trailing `/` (empty: the whole bucket).
    prefix: String,
    describe: String,
}

/// Retries of one store request: a few, within seconds (see the module docs).
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

impl StoreOrigin {
    /// Serve `prefix` of `store` (`describe` names it in log lines).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, describe: impl Into<String>) -> Self {
        StoreOrigin {
            store,
            checksums: None,
            prefix: prefix.trim_matches('/').to_string(),
            describe: describe.into(),
        }
    }

    /// The store a URL names (`s3://bucket/prefix`, `gs://…`, `az://…`),
    /// configured from the environment.
    pub fn from_url(url: &str) -> Result<StoreOrigin, StoreUrlError> {
        use object_store::ObjectStoreScheme as S;
        let parsed = url::Url::parse(url).map_err(|_| StoreUrlError::Scheme(url.into()))?;
        let (scheme, prefix) = S::parse(&parsed).map_err(|_| StoreUrlError::Scheme(url.into()))?;
        let mut checksums = None;
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match scheme {
            S::AmazonS3 => {
                let builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry());
                builder.clone().build().map(|s3| {
                    checksums = S3Checksums::new(&parsed, &builder, &s3);
                    Arc::new(s3) as _
                })
            }
            S::GoogleCloudStorage => object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(retry())
                .build()
                .map(|s| Arc::new(s) as _),
            S::MicrosoftAzure => object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry())
                .build()
                .map(|s| Arc::new(s) as _),
            _ => return Err(StoreUrlError::Scheme(url.into())),
        };
        let store = built.map_err(|source| StoreUrlError::Build {
            url: url.into(),
            source,
        })?;
        let prefix = prefix.as_ref().to_string();
        let origin = StoreOrigin::new(store, &prefix, url.trim_end_matches('/'));
        Ok(StoreOrigin {
            checksums,
            ..origin
        })
    }

    /// The store's path of `key`. Taken as it is (`Path::parse`), not
    /// re-encoded: an object uploaded as `a~b.txt` is found at `/a~b.txt`.
    fn location(&self, key: &Key) -> Result<Path, OriginError> {
        let raw = match (self.prefix.is_empty(), key.as_str().is_empty()) {
            (true, _) => key.as_str().to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{}", self.prefix, key.as_str()),
        };
        Path::parse(raw).map_err(|_| OriginError::NotFound)
    }
}

fn meta_of(m: &object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        size: m.size,
        last_modified: SystemTime::from(m.last_modified),
        version: StoreVersion {
            etag: m.e_tag.clone(),
            version: m.version.clone(),
        },
    }
}

/// The one mapping from the crate's errors to ours.
fn origin_error(e: object_store::Error) -> OriginError {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } | E::InvalidPath { .. } => OriginError::NotFound,
        E::Precondition { .. } | E::NotModified { .. } => OriginError::Changed(e.to_string()),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            OriginError::Denied(e.to_string())
        }
        _ if matches!(answered_status(&e), Some(401 | 403)) => OriginError::Denied(e.to_string()),
        _ => OriginError::Unavailable(e.to_string()),
    }
}

/// What a store's HTTP answer was, for an error the crate reports only as
/// generic: object_store 0.12 maps 401/403 to `PermissionDenied` for HEAD
/// and GET but not for a listing, whose error carries the status only in
/// its text, in a type the crate does not export (`RetryError`'s source,
/// "Server returned non-2xx status code: 403 Forbidden: ...").
fn answered_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    const SAID: &str = "Server returned non-2xx status code: ";
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(rest) = err.to_string().strip_prefix(SAID) {
            return rest.get(..3)?.parse().ok();
        }
        next = err.source();
    }
    None
}

impl Origin for StoreOrigin {
    fn head<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<ObjectMeta, OriginError>> {
        Box::pin(async move {
            let location = self.location(key)?;
            if key.as_str().is_empty() {
                return Err(OriginError::NotFound); // the prefix is a "directory"
            }
            let meta = self.store.head(&location).await.map_err(origin_error)?;
            Ok(meta_of(&meta))
        })
    }

    fn read<'a>(
        &'a self,
        key: &'a Key,
        meta: &'a ObjectMeta,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, OriginError>> {
        Box::pin(async move {
            let location = self.location(key)?;
            let pin = &meta.version;
            if !pin.is_pinnable() {
                // nothing to pin a read to: refuse rather than risk mixed bytes
                return Err(OriginError::Unavailable(
                    "the store gives this object neither an ETag nor a version".into(),
                ));
            }
            let options = GetOptions {
                if_match: pin.etag.clone(),
                version: pin.version.clone(),
                range: Some(GetRange::Bounded(range.clone())),
                ..GetOptions::default()
            };
            let got = self
                .store
                .get_opts(&location, options)
                .await
                .map_err(origin_error)?;
            // belt and braces: what came back must be the version asked for
            let back = meta_of(&got.meta);
            let same = back.size == meta.size
                && (pin.etag.is_none() || back.version.etag == pin.etag)
                && (pin.version.is_none() || back.version.version == pin.version);
            if !same {
                return Err(OriginError::Changed(format!(
                    "asked for {pin:?} ({} bytes), got {:?} ({} bytes)",
                    meta.size, back.version, back.size
                )));
            }
            if got.range != range {
                return Err(OriginError::Unavailable(format!(
                    "asked for bytes {range:?}, the store sent {:?}",
                    got.range
                )));
            }
            Ok(got.into_stream().map_err(origin_error).boxed())
        })
    }

    fn list<'a>(&'a self, dir: &'a Key) -> BoxFuture<'a, Result<Vec<Listed>, OriginError>> {
        Box::pin(async move {
            let location = self.location(dir)?;
            let at = (!location.as_ref().is_empty()).then_some(&location);
            let listed = self
                .store
                .list_with_delimiter(at)
                .await
                .map_err(origin_error)?;
            let name = |p: &Path| p.filename().unwrap_or_default().to_string();
            let mut out: Vec<Listed> = listed
                .common_prefixes
                .iter()
                .map(|p| Listed {
                    name: name(p),
                    object: None,
                })
                .collect();
            out.extend(listed.objects.iter().map(|o| Listed {
                name: name(&o.location),
                object: Some((o.size, SystemTime::from(o.last_modified))),
            }));
            out.retain(|l| !l.name.is_empty());
            Ok(out)
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn stored_sha256<'a>(
        &'a self,
        key: &'a Key,
        meta: &'a ObjectMeta,
    ) -> BoxFuture<'a, Option<crate::hashcache::Digest>> {
        Box::pin(async move {
            let checksums = self.checksums.as_ref()?;
            let location = self.location(key).ok()?;
            checksums.sha256(&location, meta).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a source, as the crate's `RetryError` is.
    #[derive(Debug)]
    struct Outer(Box<dyn std::error::Error + Send + Sync>);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "Error performing GET http://s3/b?list-type=2 in 3ms - {}",
                self.0
            )
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    /// A generic error whose cause is a store's HTTP answer `status`.
    fn answered(status: u16) -> object_store::Error {
        let said = format!("Server returned non-2xx status code: {status} Reason: <Error/>");
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(Outer(said.into())),
        }
    }

    #[test]
    fn store_errors_map_to_ours() {
        use object_store::Error as E;
        let src = || "detail".into();
        let rows: Vec<(E, &str)> = vec![
            (
                E::NotFound {
                    path: "k".into(),
                    source: src(),
                },
                "NotFound",
            ),
            (
                E::Precondition {
                    path: "k".into(),
                    source: src(),
                },
                "Changed",
            ),
            (
                E::NotModified {
                    path: "k".into(),
                    source: src(),
                },
                "Changed",
            ),
            (
                E::PermissionDenied {
                    path: "k".into(),
                    source: src(),
                },
                "Denied",
            ),
            (
                E::Unauthenticated {
                    path: "k".into(),
                    source: src(),
                },
                "Denied",
            ),
            (
                E::Generic {
                    store: "S3",
                    source: src(),
                },
                "Unavailable",
            ),
            // a listing's refusal, as object_store 0.12 reports it
            (answered(403), "Denied"),
            (answered(401), "Denied"),
            (answered(503), "Unavailable"),
            (answered(404), "Unavailable"),
        ];
        for (e, want) in rows {
            let got = format!("{:?}", origin_error(e));
            assert!(got.starts_with(want), "{got} is not {want}");
        }
    }

    #[test]
    fn locations_are_prefix_and_key_as_they_are() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let o = StoreOrigin::new(store.clone(), "/pre/fix/", "memory");
        let key = Key::from_segments(&["a~b", "c d.txt"]).unwrap();
        assert_eq!(o.location(&key).unwrap().as_ref(), "pre/fix/a~b/c d.txt");
        let root = Key::from_segments::<&str>(&[]).unwrap();
        assert_eq!(o.location(&root).unwrap().as_ref(), "pre/fix");
        let bare = StoreOrigin::new(store, "", "memory");
        assert_eq!(bare.location(&key).unwrap().as_ref(), "a~b/c d.txt");
    }
}
