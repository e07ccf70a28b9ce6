//! TLS configuration for tonic servers and clients.
//!
//! Servers present `server.pem` and verify client certificates against the CA. Choose
//! [`ClientAuth::Optional`] for the gateway and other gRPC services: a client without a certificate
//! then completes the handshake and receives `UNAUTHENTICATED` with an explanation from
//! [`crate::authenticate`], rather than a bare handshake failure. A certificate that *is*
//! presented must still chain to the CA, or the handshake fails.

use std::fmt;
use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::error::PkiError;
use crate::fsutil;

/// The DNS name clients expect in the server certificate by default.
pub const DEFAULT_SERVER_NAME: &str = "localhost";

/// Whether a server demands a client certificate during the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// The handshake fails without a valid client certificate.
    #[default]
    Required,
    /// The handshake succeeds without a client certificate (a presented one must still be valid);
    /// the application answers `UNAUTHENTICATED` itself.
    Optional,
}

/// A server's certificate and key, and the CA that client certificates must chain to.
#[derive(Clone)]
pub struct ServerTls {
    /// PEM certificate (chain) of the server.
    pub cert_pem: String,
    /// PEM (PKCS#8) private key of the server. Never printed by `Debug`.
    pub key_pem: String,
    /// PEM certificate of the CA that issues client certificates.
    pub client_ca_pem: String,
}

impl ServerTls {
    /// Reads the three PEM files.
    pub fn from_files(cert: &Path, key: &Path, client_ca: &Path) -> Result<Self, PkiError> {
        Ok(Self {
            cert_pem: fsutil::read_string(cert)?,
            key_pem: fsutil::read_string(key)?,
            client_ca_pem: fsutil::read_string(client_ca)?,
        })
    }

    /// A tonic server TLS configuration with the given client-certificate policy.
    pub fn config(&self, client_auth: ClientAuth) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.client_ca_pem))
            .client_auth_optional(client_auth == ClientAuth::Optional)
    }

    /// Client certificates required by the handshake.
    pub fn required_client_auth(&self) -> ServerTlsConfig {
        self.config(ClientAuth::Required)
    }

    /// Client certificates optional in the handshake, so that the service itself can answer
    /// `UNAUTHENTICATED`. The recommended mode for the gateway.
    pub fn optional_client_auth(&self) -> ServerTlsConfig {
        self.config(ClientAuth::Optional)
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field(
                "client_ca_pem",
                &format_args!("<{} bytes>", self.client_ca_pem.len()),
            )
            .finish()
    }
}

/// A client's trust anchor, certificate and key.
#[derive(Clone)]
pub struct ClientTls {
    /// PEM certificate of the CA that issued the server certificate.
    pub ca_pem: String,
    /// PEM certificate of this client (its principal is in the URI SAN).
    pub cert_pem: String,
    /// PEM (PKCS#8) private key of this client. Never printed by `Debug`.
    pub key_pem: String,
}

impl ClientTls {
    /// Reads the three PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, PkiError> {
        Ok(Self {
            ca_pem: fsutil::read_string(ca)?,
            cert_pem: fsutil::read_string(cert)?,
            key_pem: fsutil::read_string(key)?,
        })
    }

    /// A tonic client TLS configuration expecting the server name `localhost`.
    pub fn config(&self) -> ClientTlsConfig {
        self.config_for(DEFAULT_SERVER_NAME)
    }

    /// A tonic client TLS configuration expecting `server_name` in the server certificate.
    pub fn config_for(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .domain_name(server_name)
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }

    /// A configuration that trusts `ca_pem` but presents no client certificate (anonymous).
    /// Servers with [`ClientAuth::Optional`] accept the connection and answer `UNAUTHENTICATED`.
    pub fn anonymous_config(ca_pem: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .domain_name(DEFAULT_SERVER_NAME)
            .ca_certificate(Certificate::from_pem(ca_pem))
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}
