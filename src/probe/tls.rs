//! The probe's TLS client (rustls, ring): which certificates it trusts — the
//! system's CA bundle, a `--cacert` file, or, with `--insecure`, anything
//! (handshake signatures are still checked, so the connection is real TLS).
//! ALPN offers only `http/1.1`: the probe reads HTTP/1.1 framing byte by byte.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Where the system's CA bundle is looked for (Debian/Ubuntu/Alpine, Fedora/RHEL,
/// openSUSE), after `SSL_CERT_FILE`.
pub const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Which certificates to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's CA bundle.
    System,
    /// Only the certificates in this PEM file.
    File(PathBuf),
    /// Any certificate (`--insecure`).
    Anything,
}

/// Why no TLS client could be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No certificate in the file, or none rustls accepts.
    #[error("{}: no usable certificate (PEM expected)", .0.display())]
    NoCertificates(PathBuf),
    /// No system bundle found.
    #[error("no CA bundle found (tried SSL_CERT_FILE and {}); use --cacert FILE or --insecure", CA_BUNDLES.join(", "))]
    NoSystemBundle,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    let mut config = match trust {
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
        Trust::File(path) => builder
            .with_root_certificates(roots(path)?)
            .with_no_client_auth(),
        Trust::System => {
            let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let path = env
                .into_iter()
                .chain(CA_BUNDLES.iter().map(PathBuf::from))
                .find(|p| p.is_file())
                .ok_or(TlsSetupError::NoSystemBundle)?;
            builder
                .with_root_certificates(roots(&path)?)
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsSetupError> {
    let pem = std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
        // a bundle may hold certificates webpki cannot use; skip those
        let _ = store.add(cert);
    }
    if store.is_empty() {
        return Err(TlsSetupError::NoCertificates(path.to_path_buf()));
    }
    Ok(store)
}

/// `--insecure`: any certificate, any name; signatures still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
