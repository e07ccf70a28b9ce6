//! rustls configurations for the witness's HTTPS server and the ledger's client, with the ring provider
//! (the one tonic uses).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

fn tls_error(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        what: what.into(),
        reason: reason.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(path.display().to_string(), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(path.display().to_string(), e))?;
    if certs.is_empty() {
        return Err(tls_error(
            path.display().to_string(),
            "no PEM certificate in it",
        ));
    }
    Ok(certs)
}

/// A server configuration presenting `cert` (a PEM chain) with `key`, HTTP/1.1 by ALPN, no client
/// certificates (the protocol authenticates checkpoints by their signatures, not submitters).
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|_| {
        tls_error(
            key.display().to_string(),
            "not a PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_error("TLS versions", e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| tls_error(cert.display().to_string(), e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration trusting the CA certificates in `ca` (PEM).
pub(crate) fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca)? {
        roots
            .add(cert)
            .map_err(|e| tls_error(ca.display().to_string(), e))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_error("TLS versions", e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
