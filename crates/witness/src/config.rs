//! The witness's configuration (the `[witness]` table of the service configuration).

use std::net::SocketAddr;
use std::path::PathBuf;

use hazchem_kit::ConfigError;
use serde::{Deserialize, Serialize};

/// Configuration of a witness service.
///
/// ```toml
/// [witness]
/// listen = "0.0.0.0:7448"
/// name = "witness.psb.nantong.gov.cn/hazchem"      # the key name of its cosignatures
/// signing_key = "/etc/hazchem/witness.key"         # Ed25519, PKCS#8 PEM
/// state = "/var/lib/hazchem/witness.json"
///
/// [[witness.logs]]
/// key = "/etc/hazchem/ledger.pub"                  # the ledger's key: <origin>+<id>+<base64>, or SPKI PEM
/// origin = "ledger.hazchem.nantong.gov.cn/v1"      # needed for a bare (PEM or base64) key
///
/// [witness.tls]                                    # omit for plain HTTP behind your own TLS terminator
/// cert = "/etc/hazchem/witness.pem"
/// key = "/etc/hazchem/witness.key.pem"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessServiceConfig {
    /// Where logs submit checkpoints (HTTP/1.1, `POST /add-checkpoint`).
    pub listen: SocketAddr,
    /// The witness's name: the key name of its cosignature lines; required.
    pub name: Option<String>,
    /// Its cosigning key (Ed25519, PKCS#8 PEM); required. Read once, never logged.
    pub signing_key: Option<PathBuf>,
    /// Its state (JSON): the last checkpoint it cosigned of each log, written before it answers.
    pub state: PathBuf,
    /// The logs it witnesses; at least one.
    pub logs: Vec<LogConfig>,
    /// TLS for its HTTP server; without it the witness speaks plain HTTP and must sit behind the
    /// department's own TLS terminator (C2SP calls it a bastion).
    pub tls: Option<TlsFiles>,
}

/// A log the witness knows: its checkpoint key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The log's verifier key file: `<origin>+<key id>+<base64>`, or a bare key (SPKI PEM or base64)
    /// with `origin`.
    pub key: PathBuf,
    /// The log's origin, for a bare key (default: `hazchem.example/ledger`); a `<origin>+…` key names its
    /// own, and this must agree.
    pub origin: Option<String>,
}

/// The server's certificate (chain) and key, PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    /// Read, never logged.
    pub key: PathBuf,
}

impl Default for WitnessServiceConfig {
    fn default() -> Self {
        WitnessServiceConfig {
            listen: hazchem_pki::services::default_listen(crate::SERVICE_NAME),
            name: None,
            signing_key: None,
            state: PathBuf::from(".hazchem/witness.json"),
            logs: Vec::new(),
            tls: None,
        }
    }
}

impl WitnessServiceConfig {
    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.name {
            None => {
                return Err(ConfigError::new(
                    "witness.name",
                    "required: the key name of the witness's cosignatures",
                ));
            }
            Some(name)
                if name.is_empty()
                    || name
                        .chars()
                        .any(|c| c.is_whitespace() || c == '+' || c.is_control()) =>
            {
                return Err(ConfigError::new(
                    "witness.name",
                    format!("non-empty, without spaces or '+', got {name:?}"),
                ));
            }
            Some(_) => {}
        }
        if self.signing_key.is_none() {
            return Err(ConfigError::new(
                "witness.signing_key",
                "required: the witness's Ed25519 cosigning key (PKCS#8 PEM)",
            ));
        }
        if self.logs.is_empty() {
            return Err(ConfigError::new(
                "witness.logs",
                "at least one log: [[witness.logs]] key = \"ledger.pub\"",
            ));
        }
        Ok(())
    }
}
