//! The enforcement service's configuration (the `[enforcement]` table of the service configuration).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hazchem_kit::{ConfigError, ServerTlsFiles, seconds};
use serde::{Deserialize, Serialize};

/// Configuration of the enforcement service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnforcementConfig {
    /// Where coordinators connect (gRPC over mTLS).
    pub listen: SocketAddr,
    /// The local store (sled): derived state, rebuilt from the stream if lost.
    pub store: PathBuf,
    /// TLS files; required to serve gRPC.
    pub tls: Option<ServerTlsFiles>,
    /// Registers of candidate enterprises and inspectors (TOML); unset means the embedded sample
    /// (`deploy/enforcement-registers.toml`).
    pub registers: Option<PathBuf>,
    /// How often deadlines are checked (whole seconds in files).
    #[serde(with = "seconds")]
    pub escalation_interval: Duration,
    /// How long public security has to answer a transfer before it escalates (whole seconds; default three
    /// days, 《行政执法机关移送涉嫌犯罪案件的规定》 Art. 8).
    #[serde(with = "seconds")]
    pub transfer_answer_period: Duration,
    /// How long a command may wait for the service to catch up with the stream (whole seconds).
    #[serde(with = "seconds")]
    pub command_timeout: Duration,
    /// The most stream messages applied in one durable batch.
    pub max_batch: usize,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        EnforcementConfig {
            listen: hazchem_pki::services::default_listen(crate::SERVICE_NAME),
            store: PathBuf::from(".hazchem/enforcement"),
            tls: None,
            registers: None,
            escalation_interval: Duration::from_secs(60),
            transfer_answer_period: Duration::from_secs(3 * 24 * 3600),
            command_timeout: Duration::from_secs(10),
            max_batch: 1000,
        }
    }
}

impl EnforcementConfig {
    /// The TLS files, read.
    pub fn server_tls(&self) -> crate::Result<hazchem_pki::ServerTls> {
        let files = self
            .tls
            .as_ref()
            .ok_or_else(|| crate::Error::Config(ConfigError::new("enforcement.tls", "required")))?;
        Ok(files.load()?)
    }

    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() {
            return Err(ConfigError::new(
                "enforcement.tls",
                "cert, key and client_ca are required (departments authenticate with mTLS)",
            ));
        }
        if self.escalation_interval.is_zero() {
            return Err(ConfigError::new(
                "enforcement.escalation_interval",
                "at least 1 second",
            ));
        }
        if self.transfer_answer_period.is_zero() {
            return Err(ConfigError::new(
                "enforcement.transfer_answer_period",
                "at least 1 second",
            ));
        }
        if self.command_timeout.is_zero() {
            return Err(ConfigError::new(
                "enforcement.command_timeout",
                "at least 1 second",
            ));
        }
        if !(1..=100_000).contains(&self.max_batch) {
            return Err(ConfigError::new(
                "enforcement.max_batch",
                format!("between 1 and 100000, got {}", self.max_batch),
            ));
        }
        Ok(())
    }
}
