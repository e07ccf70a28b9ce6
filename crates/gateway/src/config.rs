//! The gateway's configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hazchem_kit::{ConfigError, ServerTlsFiles};
use serde::{Deserialize, Serialize};

/// The gateway's name in the service table (`hazchem_pki::services`): its principal
/// `hazchem://service/gateway`, which a gateway presents to a credit service in another process.
pub const SERVICE_NAME: &str = "gateway";

/// Configuration of the gateway service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where department systems connect (gRPC over mTLS).
    pub listen: SocketAddr,
    /// TLS files; required.
    pub tls: Option<ServerTlsFiles>,
    /// Publish and read policy (TOML); unset means the built-in default policy (`deploy/policy.toml`).
    pub policy: Option<PathBuf>,
    /// Registered origin-signing public keys of the departments, with their key ids and validity
    /// (`signing-keys.toml`, see `hazchem_verify::registry`); required.
    pub signing_keys: Option<PathBuf>,
    /// The largest encoded event accepted.
    pub max_event_bytes: usize,
    /// How far in the future an event's timestamps may be, to allow for clock drift.
    #[serde(with = "hazchem_kit::seconds")]
    pub max_clock_skew: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: hazchem_pki::services::default_listen(SERVICE_NAME),
            tls: None,
            policy: None,
            signing_keys: None,
            max_event_bytes: 256 * 1024,
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

impl GatewayConfig {
    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() {
            return Err(ConfigError::new(
                "gateway.tls",
                "cert, key and client_ca are required (departments authenticate with mTLS)",
            ));
        }
        if self.signing_keys.is_none() {
            return Err(ConfigError::new(
                "gateway.signing_keys",
                "the registry of department signing keys is required",
            ));
        }
        if !(1024..=8 * 1024 * 1024).contains(&self.max_event_bytes) {
            return Err(ConfigError::new(
                "gateway.max_event_bytes",
                format!(
                    "must be between 1 KiB and 8 MiB, got {}",
                    self.max_event_bytes
                ),
            ));
        }
        if self.max_clock_skew > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "gateway.max_clock_skew",
                "at most one hour",
            ));
        }
        Ok(())
    }
}
