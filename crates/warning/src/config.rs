//! The warning service's configuration (the `[warning]` table of the service configuration).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hazchem_kit::{ServerTlsFiles, seconds};
use serde::{Deserialize, Serialize};

/// Configuration of the warning service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarningConfig {
    /// Where departments connect (gRPC over mTLS).
    pub listen: SocketAddr,
    /// The local store (sled): derived state, rebuilt from the stream if lost.
    pub store: PathBuf,
    /// TLS files; required to serve gRPC.
    pub tls: Option<ServerTlsFiles>,
    /// The rules (TOML); unset means the embedded `deploy/warning-rules.toml`.
    pub rules: Option<PathBuf>,
    /// The chemical catalogue whose lists the rules name (TOML); unset means the embedded sample.
    pub catalogue: Option<PathBuf>,
    /// How often acknowledgement deadlines are checked (whole seconds in files).
    #[serde(with = "seconds")]
    pub escalation_interval: Duration,
    /// How long a command may wait for the service to catch up with the stream (whole seconds).
    #[serde(with = "seconds")]
    pub command_timeout: Duration,
    /// The most stream messages applied in one durable batch.
    pub max_batch: usize,
}

impl Default for WarningConfig {
    fn default() -> Self {
        WarningConfig {
            listen: hazchem_pki::services::default_listen(crate::SERVICE_NAME),
            store: PathBuf::from(".hazchem/warning"),
            tls: None,
            rules: None,
            catalogue: None,
            escalation_interval: Duration::from_secs(30),
            command_timeout: Duration::from_secs(10),
            max_batch: 1000,
        }
    }
}

impl WarningConfig {
    /// The TLS files, read.
    pub fn server_tls(&self) -> crate::Result<hazchem_pki::ServerTls> {
        let files = self
            .tls
            .as_ref()
            .ok_or_else(|| crate::Error::Config("warning.tls is required".into()))?;
        Ok(files.load()?)
    }

    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls.is_none() {
            return Err(
                "warning.tls: cert, key and client_ca are required (departments authenticate with mTLS)"
                    .into(),
            );
        }
        if self.escalation_interval.is_zero() {
            return Err("warning.escalation_interval: at least 1 second".into());
        }
        if self.command_timeout.is_zero() {
            return Err("warning.command_timeout: at least 1 second".into());
        }
        if !(1..=100_000).contains(&self.max_batch) {
            return Err(format!(
                "warning.max_batch: between 1 and 100000, got {}",
                self.max_batch
            ));
        }
        Ok(())
    }
}
