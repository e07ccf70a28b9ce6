//! Errors of the PKI crate.
//!
//! Two families here, because their callers react differently (a third, why an origin signature was
//! not accepted, is the registry's [`crate::SignatureError`]: each cause its own variant, so that a
//! rejection can say precisely what was wrong):
//!
//! - [`PkiError`]: setting things up went wrong (files, PEM, key formats, certificate generation).
//!   Operators see these at start-up.
//! - [`AuthError`]: a peer's certificate does not name exactly one principal we recognise. The
//!   gateway turns these into `UNAUTHENTICATED`.
//!
//! None of these errors ever carries key material.

use std::path::PathBuf;

/// Failure while creating, reading or writing keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A filesystem operation failed.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What we were doing ("reading", "writing", "creating directory", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file that a loaded PKI directory must contain is absent.
    #[error(
        "missing `{}`: the PKI directory is incomplete (run `DevPki::generate` to fill in a development PKI)",
        path.display()
    )]
    Missing {
        /// The expected file.
        path: PathBuf,
    },

    /// A file is present but does not fit the rest of the PKI directory (issued by another CA,
    /// certificate and key do not match, wrong principal, expired, stale registry).
    #[error(
        "`{}` does not fit this PKI directory: {reason} (a development PKI repairs this on `DevPki::generate`)",
        path.display()
    )]
    Inconsistent {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation failed for {subject}: {source}")]
    Certificate {
        /// Which certificate we were making.
        subject: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },

    /// A PEM, PKCS#8 or SPKI document could not be decoded. The message never quotes the input.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What we were decoding (e.g. "Ed25519 PKCS#8 private key from `ca.key`").
        what: String,
        /// Why, without echoing the input.
        reason: String,
    },

    /// The public key registry (`signing-keys.toml`) is malformed.
    #[error("invalid key registry{}: {reason}", origin.as_ref().map(|p| format!(" `{}`", p.display())).unwrap_or_default())]
    Registry {
        /// The file, when the registry was read from one.
        origin: Option<PathBuf>,
        /// What is wrong, naming the entry concerned.
        reason: String,
    },
}

impl PkiError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn decode(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Decode {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Why a peer certificate does not identify a principal.
///
/// The TLS handshake has already checked that the chain leads to our CA; these errors are about
/// *who* the certificate names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The connection carries no client certificate (plain TLS, or mTLS with optional client auth).
    #[error(
        "no client certificate presented: connect with mutual TLS using the certificate issued to your department or service"
    )]
    NoPeerCertificate,

    /// The certificate is not valid DER X.509.
    #[error("client certificate cannot be parsed: {0}")]
    MalformedCertificate(String),

    /// The certificate has no `hazchem://` URI subject alternative name.
    #[error(
        "client certificate names no Hazchem principal: it needs exactly one URI SAN of the form \
         hazchem://department/<code>, hazchem://service/<name> or hazchem://auditor/<name>"
    )]
    NoPrincipal,

    /// The certificate has more than one `hazchem://` URI SAN.
    #[error(
        "client certificate names {} Hazchem principals ({}); exactly one is allowed",
        uris.len(),
        uris.join(", ")
    )]
    SeveralPrincipals {
        /// Every `hazchem://` URI found, in certificate order.
        uris: Vec<String>,
    },

    /// The URI names a department code that is not one of the nine.
    #[error(
        "client certificate names unknown department `{code}` (in `{uri}`); known departments: {known}"
    )]
    UnknownDepartment {
        /// The offending code.
        code: String,
        /// The whole URI.
        uri: String,
        /// The known codes, comma separated.
        known: String,
    },

    /// The URI has the hazchem scheme but is not one of the recognised forms.
    #[error("client certificate principal `{uri}` is malformed: {reason}")]
    MalformedPrincipal {
        /// The offending URI.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
}
