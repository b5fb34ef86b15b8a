//! HTTPS: the certificate a server presents (from PEM files, or generated
//! for localhost at start-up), checked before the server starts, reloadable
//! without dropping a connection, and ALPN offering `h2` and `http/1.1`.
//!
//! rustls with the `ring` provider: no OpenSSL, no C toolchain beyond what
//! `ring` needs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest as _, Sha256};

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A PEM certificate chain and its PEM private key.
    Files {
        /// Certificate chain, end-entity first.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A certificate generated at start-up for these names (and written as
    /// PEM to `cert_out`, if set, so a client can trust it).
    SelfSigned {
        /// Subject alternative names: DNS names or IP addresses.
        names: Vec<String>,
        /// Where to write the certificate (PEM).
        cert_out: Option<PathBuf>,
    },
}

/// Why certificate material cannot be used. One line each.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The generated certificate cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the kind expected.
    #[error("{}: no {what} found (PEM expected)", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// The key is not the certificate's, or not a key rustls can use.
    #[error("{}: {reason}", key.display())]
    Key {
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The certificate is outside its validity period.
    #[error("{}: certificate {state} ({when})", path.display())]
    Validity {
        /// The certificate file.
        path: PathBuf,
        /// "expired" or "not yet valid".
        state: &'static str,
        /// The bound passed, as written in the certificate.
        when: String,
    },
    /// The certificate cannot be parsed as X.509.
    #[error("{}: not an X.509 certificate: {reason}", path.display())]
    X509 {
        /// The certificate file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// Generating a self-signed certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A loaded certificate, its key and its SHA-256 fingerprint.
#[derive(Debug)]
pub struct Loaded {
    /// What the server presents.
    pub key: Arc<CertifiedKey>,
    /// SHA-256 of the end-entity certificate (DER), upper-case hex pairs
    /// separated by `:`, as browsers and `openssl x509 -fingerprint` show it.
    pub fingerprint: String,
    /// The certificate (PEM) when it was generated here.
    pub generated_pem: Option<String>,
}

/// Load or generate the certificate `source` describes, checked: readable,
/// parseable, the key matching the certificate, and valid now.
pub fn load(source: &TlsSource) -> Result<Loaded, TlsError> {
    match source {
        TlsSource::Files { cert, key } => load_files(cert, key),
        TlsSource::SelfSigned { names, .. } => generate(names),
    }
}

fn load_files(cert_path: &Path, key_path: &Path) -> Result<Loaded, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let (cert_pem, key_pem) = (read(cert_path)?, read(key_path)?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path.to_path_buf(),
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
        path: key_path.to_path_buf(),
        what: "private key",
    })?;
    check_validity(cert_path, &chain[0], SystemTime::now())?;
    certified(chain, key, key_path, None)
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    key_path: &Path,
    generated_pem: Option<String>,
) -> Result<Loaded, TlsError> {
    let fingerprint = fingerprint(&chain[0]);
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Key {
        key: key_path.to_path_buf(),
        reason: match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the certificate".into()
            }
            other => other.to_string(),
        },
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        fingerprint,
        generated_pem,
    })
}

/// Refuse a certificate outside its validity period at `now`.
fn check_validity(path: &Path, der: &CertificateDer<'_>, now: SystemTime) -> Result<(), TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::X509 {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let validity = cert.validity();
    if now > validity.not_after.timestamp() {
        return Err(TlsError::Validity {
            path: path.to_path_buf(),
            state: "expired",
            when: format!("not after {}", validity.not_after),
        });
    }
    if now < validity.not_before.timestamp() {
        return Err(TlsError::Validity {
            path: path.to_path_buf(),
            state: "not yet valid",
            when: format!("not before {}", validity.not_before),
        });
    }
    Ok(())
}

fn generate(names: &[String]) -> Result<Loaded, TlsError> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let pem = generated.cert.pem();
    let chain = vec![generated.cert.der().clone()];
    let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    certified(chain, key, Path::new("(generated key)"), Some(pem))
}

/// `AB:CD:...` of SHA-256 over the certificate's DER.
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate presented to every client; replaced on reload. A
/// handshake in progress keeps the one it started with, so a reload never
/// drops a connection.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Present `key` from now on.
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertStore {
            current: RwLock::new(key),
        })
    }

    /// Present `key` to new handshakes.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

/// A rustls server configuration presenting `store`'s certificate, offering
/// HTTP/2 and HTTP/1.1 by ALPN (RFC 7301).
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The names a generated certificate covers: the loopback names and `bind`.
pub fn self_signed_names(bind: &str) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let bind = bind.trim_start_matches('[').trim_end_matches(']');
    let unspecified = bind
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if !bind.is_empty() && !unspecified && !names.iter().any(|n| n == bind) {
        names.push(bind.to_string());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
        let g = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, g.cert.pem()).unwrap();
        std::fs::write(&key, g.key_pair.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn good_material_loads_and_bad_material_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), &["localhost"]);
        let loaded = load(&TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap();
        assert_eq!(loaded.fingerprint.len(), 32 * 3 - 1);

        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = write_pair(other.path(), &["localhost"]);
        let err = load(&TlsSource::Files {
            cert: cert.clone(),
            key: other_key,
        })
        .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");

        let err = load(&TlsSource::Files {
            cert: dir.path().join("missing.pem"),
            key: key.clone(),
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("cannot read "), "{err}");

        let err = load(&TlsSource::Files {
            cert: key.clone(),
            key: key.clone(),
        })
        .unwrap_err();
        assert!(err.to_string().contains("no certificate found"), "{err}");
    }

    #[test]
    fn validity_is_checked_against_now() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_pair(dir.path(), &["localhost"]);
        let pem = std::fs::read(&cert).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        // rcgen's defaults: valid from 1975 to 4096
        assert!(check_validity(&cert, &der, SystemTime::now()).is_ok());
        let before = SystemTime::UNIX_EPOCH;
        let err = check_validity(&cert, &der, before).unwrap_err();
        assert!(err.to_string().contains("not yet valid"), "{err}");

        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let kp = rcgen::KeyPair::generate().unwrap();
        let old = params.self_signed(&kp).unwrap();
        std::fs::write(dir.path().join("old.pem"), old.pem()).unwrap();
        std::fs::write(dir.path().join("old.key"), kp.serialize_pem()).unwrap();
        let err = load(&TlsSource::Files {
            cert: dir.path().join("old.pem"),
            key: dir.path().join("old.key"),
        })
        .unwrap_err();
        assert!(err.to_string().contains("certificate expired"), "{err}");
    }
}
