//! Principals and how they are read from client certificates.
//!
//! A principal is named in its certificate by exactly one URI subject alternative name:
//!
//! | principal | URI SAN |
//! | --- | --- |
//! | a department | `hazchem://department/<code>` (`miit`, `psb`, `eeb`, `transport`, `emergency`, `samr`, `approval`, `msa`, `fire`) |
//! | a service | `hazchem://service/<name>` (`ledger`, `credit`, ...) |
//! | an auditor | `hazchem://auditor/<name>` |
//!
//! Names of services and auditors are 1–63 characters of lowercase ASCII letters, digits and `-`,
//! starting with a letter or digit. The subject common name repeats the principal for humans but is
//! never used for authentication. URI SANs with other schemes (SPIFFE IDs, say) are ignored.

use std::fmt;
use std::str::FromStr;

use hazchem_domain::Department;
use x509_parser::extensions::GeneralName;

use crate::error::AuthError;

/// The URI scheme of Hazchem principals.
pub const SCHEME: &str = "hazchem";

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// One of the nine city departments.
    Department(Department),
    /// One of the bus's own services (`ledger`, `credit`, ...).
    Service(String),
    /// An auditor: may replay the record and ask for proofs.
    Auditor(String),
}

impl Principal {
    /// A service principal, checking the name.
    pub fn service(name: &str) -> Result<Self, AuthError> {
        check_name(name, "service", &format!("{SCHEME}://service/{name}"))?;
        Ok(Self::Service(name.to_owned()))
    }

    /// An auditor principal, checking the name.
    pub fn auditor(name: &str) -> Result<Self, AuthError> {
        check_name(name, "auditor", &format!("{SCHEME}://auditor/{name}"))?;
        Ok(Self::Auditor(name.to_owned()))
    }

    /// The URI that names this principal in a certificate, e.g. `hazchem://department/miit`.
    pub fn uri(&self) -> String {
        format!("{SCHEME}://{}/{}", self.kind(), self.name())
    }

    /// `department`, `service` or `auditor`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Department(_) => "department",
            Self::Service(_) => "service",
            Self::Auditor(_) => "auditor",
        }
    }

    /// The department code, service name or auditor name.
    pub fn name(&self) -> &str {
        match self {
            Self::Department(d) => d.code(),
            Self::Service(n) | Self::Auditor(n) => n,
        }
    }

    /// The department, when the principal is one.
    pub fn department(&self) -> Option<Department> {
        match self {
            Self::Department(d) => Some(*d),
            _ => None,
        }
    }

    /// The subject common name put in certificates for humans, e.g. `department miit`.
    pub fn common_name(&self) -> String {
        format!("{} {}", self.kind(), self.name())
    }

    /// Parses a `hazchem://<kind>/<name>` URI.
    pub fn from_uri(uri: &str) -> Result<Self, AuthError> {
        let malformed = |reason: &str| AuthError::MalformedPrincipal {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = strip_scheme(uri).ok_or_else(|| malformed("the scheme must be `hazchem://`"))?;
        let (kind, name) = rest
            .split_once('/')
            .ok_or_else(|| malformed("expected hazchem://<department|service|auditor>/<name>"))?;
        match kind {
            "department" => {
                if name.is_empty() {
                    return Err(malformed("the department code is empty"));
                }
                Department::from_str(name)
                    .map(Self::Department)
                    .map_err(|_| AuthError::UnknownDepartment {
                        code: name.to_owned(),
                        uri: uri.to_owned(),
                        known: Department::ALL
                            .iter()
                            .map(|d| d.code())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
            "service" => {
                check_name(name, "service", uri)?;
                Ok(Self::Service(name.to_owned()))
            }
            "auditor" => {
                check_name(name, "auditor", uri)?;
                Ok(Self::Auditor(name.to_owned()))
            }
            other => Err(malformed(&format!(
                "unknown principal kind `{other}`; expected department, service or auditor"
            ))),
        }
    }

    /// Reads the principal from a DER-encoded X.509 certificate.
    ///
    /// Exactly one `hazchem://` URI SAN is required. This does **not** check the signature chain:
    /// call it on certificates that the TLS handshake has already verified against our CA.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, AuthError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| AuthError::MalformedCertificate(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| AuthError::MalformedCertificate(e.to_string()))?;
        let uris: Vec<String> = san
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::URI(uri) if strip_scheme(uri).is_some() => {
                            Some((*uri).to_owned())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        match uris.as_slice() {
            [] => Err(AuthError::NoPrincipal),
            [uri] => Self::from_uri(uri),
            _ => Err(AuthError::SeveralPrincipals { uris }),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl FromStr for Principal {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_uri(s)
    }
}

/// Authenticates the peer of a gRPC request from its TLS client certificate.
///
/// tonic records peer certificates for servers started with `serve`, `serve_with_shutdown` or
/// `serve_with_incoming*` over `TcpStream`s (e.g. a `TcpListenerStream`); with other I/O types
/// the certificates are not available and every request is unauthenticated.
///
/// The server must run with [`crate::tls::ServerTls`] (client certificates verified against our
/// CA). With [`crate::tls::ClientAuth::Optional`] a client without a certificate reaches this
/// function and gets `UNAUTHENTICATED` with an explanation, instead of a failed handshake.
pub fn authenticate<T>(req: &tonic::Request<T>) -> Result<Principal, tonic::Status> {
    principal_of(req).map_err(|e| tonic::Status::unauthenticated(e.to_string()))
}

/// Like [`authenticate`], but keeps the precise [`AuthError`].
pub fn principal_of<T>(req: &tonic::Request<T>) -> Result<Principal, AuthError> {
    let certs = req.peer_certs().ok_or(AuthError::NoPeerCertificate)?;
    let leaf = certs.first().ok_or(AuthError::NoPeerCertificate)?;
    Principal::from_cert_der(leaf.as_ref())
}

/// A tonic interceptor: authenticates the caller and stores its [`Principal`] in the request
/// extensions, where handlers find it with `req.extensions().get::<Principal>()`.
///
/// ```
/// // Wraps every service of a tonic server: `Server::builder().layer(authenticated)`.
/// let authenticated = tonic::service::InterceptorLayer::new(hazchem_pki::auth_interceptor);
/// ```
pub fn auth_interceptor(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let principal = authenticate(&req)?;
    req.extensions_mut().insert(principal);
    Ok(req)
}

/// Returns the part after `hazchem://`, accepting the scheme in any case (RFC 3986).
fn strip_scheme(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once("://")?;
    scheme.eq_ignore_ascii_case(SCHEME).then_some(rest)
}

fn check_name(name: &str, kind: &str, uri: &str) -> Result<(), AuthError> {
    let malformed = |reason: String| AuthError::MalformedPrincipal {
        uri: uri.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(malformed(format!("the {kind} name is empty")));
    }
    if name.len() > 63 {
        return Err(malformed(format!(
            "the {kind} name is {} characters long; at most 63 are allowed",
            name.len()
        )));
    }
    if name.starts_with('-') {
        return Err(malformed(format!(
            "the {kind} name must start with a letter or digit"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(malformed(format!(
            "the {kind} name contains {c:?}; only lowercase ASCII letters, digits and `-` are allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    /// A self-signed certificate with the given SANs (`uri:` prefix for URIs, else DNS names).
    fn cert_with_sans(sans: &[&str]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s.strip_prefix("uri:") {
                Some(uri) => SanType::URI(uri.try_into().unwrap()),
                None => SanType::DnsName((*s).try_into().unwrap()),
            })
            .collect();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn department_principal() {
        let der = cert_with_sans(&["uri:hazchem://department/miit"]);
        let principal = Principal::from_cert_der(&der).unwrap();
        assert_eq!(principal, Principal::Department("miit".parse().unwrap()));
        assert_eq!(principal.uri(), "hazchem://department/miit");
        assert_eq!(principal.department().map(|d| d.code()), Some("miit"));
    }

    #[test]
    fn every_department_round_trips() {
        for department in Department::ALL {
            let principal = Principal::Department(department);
            let der = cert_with_sans(&[&format!("uri:{}", principal.uri())]);
            assert_eq!(Principal::from_cert_der(&der).unwrap(), principal);
        }
    }

    #[test]
    fn service_principal() {
        let der = cert_with_sans(&["localhost", "uri:hazchem://service/ledger"]);
        assert_eq!(
            Principal::from_cert_der(&der).unwrap(),
            Principal::Service("ledger".to_owned())
        );
    }

    #[test]
    fn auditor_principal() {
        let der = cert_with_sans(&["uri:hazchem://auditor/provincial-audit-1"]);
        let principal = Principal::from_cert_der(&der).unwrap();
        assert_eq!(
            principal,
            Principal::Auditor("provincial-audit-1".to_owned())
        );
        assert_eq!(
            principal.to_string(),
            "hazchem://auditor/provincial-audit-1"
        );
    }

    #[test]
    fn other_uri_schemes_are_ignored() {
        let der = cert_with_sans(&[
            "uri:spiffe://hazchem.example/gateway",
            "uri:hazchem://department/fire",
        ]);
        assert_eq!(
            Principal::from_cert_der(&der).unwrap(),
            Principal::Department("fire".parse().unwrap())
        );
    }

    #[test]
    fn missing_san_is_rejected() {
        let der = cert_with_sans(&[]);
        assert_eq!(Principal::from_cert_der(&der), Err(AuthError::NoPrincipal));
        let der = cert_with_sans(&["localhost", "uri:https://example.org/"]);
        let err = Principal::from_cert_der(&der).unwrap_err();
        assert_eq!(err, AuthError::NoPrincipal);
        assert!(err.to_string().contains("hazchem://department/<code>"));
    }

    #[test]
    fn two_sans_are_rejected() {
        let der = cert_with_sans(&[
            "uri:hazchem://department/miit",
            "uri:hazchem://department/psb",
        ]);
        let err = Principal::from_cert_der(&der).unwrap_err();
        assert_eq!(
            err,
            AuthError::SeveralPrincipals {
                uris: vec![
                    "hazchem://department/miit".to_owned(),
                    "hazchem://department/psb".to_owned()
                ]
            }
        );
        assert!(err.to_string().contains("exactly one"), "{err}");
        // Even when they agree: one principal means one SAN.
        let der = cert_with_sans(&[
            "uri:hazchem://service/ledger",
            "uri:hazchem://service/ledger",
        ]);
        assert!(matches!(
            Principal::from_cert_der(&der),
            Err(AuthError::SeveralPrincipals { .. })
        ));
    }

    #[test]
    fn unknown_department_is_rejected() {
        let der = cert_with_sans(&["uri:hazchem://department/mof"]);
        let err = Principal::from_cert_der(&der).unwrap_err();
        assert!(
            matches!(&err, AuthError::UnknownDepartment { code, .. } if code == "mof"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("unknown department `mof`"),
            "{err}"
        );
        assert!(err.to_string().contains("miit"), "{err}");
    }

    #[test]
    fn malformed_principals_are_rejected() {
        for (uri, needle) in [
            ("hazchem://department/", "empty"),
            ("hazchem://service/", "empty"),
            ("hazchem://service/Ledger", "'L'"),
            ("hazchem://auditor/-x", "start with"),
            (
                "hazchem://operator/alice",
                "unknown principal kind `operator`",
            ),
            ("hazchem://department", "expected hazchem://"),
            ("hazchem://service/a/b", "'/'"),
        ] {
            let der = cert_with_sans(&[&format!("uri:{uri}")]);
            let err = Principal::from_cert_der(&der).unwrap_err();
            assert!(
                matches!(err, AuthError::MalformedPrincipal { .. }),
                "{uri}: {err:?}"
            );
            assert!(err.to_string().contains(needle), "{uri}: {err}");
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            Principal::from_cert_der(b"not a certificate"),
            Err(AuthError::MalformedCertificate(_))
        ));
    }

    #[test]
    fn request_without_peer_certificate_is_unauthenticated() {
        let req = tonic::Request::new(());
        let status = authenticate(&req).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("no client certificate"));
        assert!(auth_interceptor(tonic::Request::new(())).is_err());
    }

    #[test]
    fn uris_parse_and_print() {
        for uri in [
            "hazchem://department/approval",
            "hazchem://service/console",
            "hazchem://auditor/a1",
        ] {
            assert_eq!(uri.parse::<Principal>().unwrap().uri(), uri);
        }
        assert_eq!(
            "HAZCHEM://service/ledger".parse::<Principal>().unwrap(),
            Principal::Service("ledger".to_owned())
        );
        assert!(Principal::service("").is_err());
        assert!(Principal::auditor(&"a".repeat(64)).is_err());
    }
}
