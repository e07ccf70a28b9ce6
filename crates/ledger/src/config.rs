//! The ledger's configuration (the `[ledger]` table of the service configuration).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hazchem_kit::{ConfigError, ServerTlsFiles, seconds};
use serde::{Deserialize, Serialize};

/// How much of the store is checked when the ledger starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartupCheck {
    /// Every leaf against its hash and every interior hash against its children (`O(n)`), then the root
    /// against the last checkpoint.
    #[default]
    Full,
    /// Only the root at the last checkpoint's size, from the stored hashes, against the checkpoint
    /// (`O(log n)`); a store whose leaf bytes were altered but not its hashes passes this one.
    Checkpoint,
}

/// Configuration of the ledger service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// Where auditors connect (gRPC over mTLS).
    pub listen: SocketAddr,
    /// The local store (sled): derived state, rebuilt from the stream if lost.
    pub store: PathBuf,
    /// TLS files; required.
    pub tls: Option<ServerTlsFiles>,
    /// The checkpoint signing key (Ed25519, PKCS#8 PEM); required. Read, never logged.
    pub signing_key: Option<PathBuf>,
    /// The log's identity: first line of every checkpoint and the key name of its signature.
    pub origin: String,
    /// Issue a checkpoint once this many events arrived since the last one.
    pub checkpoint_every: u64,
    /// Issue a checkpoint this often (whole seconds) if any event arrived since the last one.
    #[serde(with = "seconds")]
    pub checkpoint_interval: Duration,
    /// Read policy (TOML) for Replay; unset means the built-in default policy.
    pub policy: Option<PathBuf>,
    /// The most messages appended in one durable batch.
    pub max_batch: usize,
    /// How much of the store is checked at start.
    pub startup_check: StartupCheck,
    /// Witnesses run in the ledger's process (`[[ledger.witnesses]]`): each checkpoint is given to each,
    /// and their cosignatures are appended to the stored note. `hazchem dev` runs one per department.
    pub witnesses: Vec<WitnessConfig>,
}

/// A witness run in the ledger's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name (the key name of its cosignatures), e.g. `hazchem.example/witness/POL`.
    pub name: String,
    /// Its cosigning key (Ed25519, PKCS#8 PEM).
    pub signing_key: PathBuf,
    /// Its state file (JSON): the last checkpoint it cosigned per log, so that a restart keeps refusing
    /// forks.
    pub state: PathBuf,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            listen: hazchem_pki::services::default_listen(crate::SERVICE_NAME),
            store: PathBuf::from(".hazchem/ledger"),
            tls: None,
            signing_key: None,
            origin: crate::note::DEFAULT_ORIGIN.to_owned(),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            policy: None,
            max_batch: 1000,
            startup_check: StartupCheck::Full,
            witnesses: Vec::new(),
        }
    }
}

impl LedgerConfig {
    /// Reads the TLS files (after [`LedgerConfig::validate`]).
    pub fn server_tls(&self) -> crate::Result<hazchem_pki::ServerTls> {
        let files = self
            .tls
            .as_ref()
            .ok_or_else(|| crate::Error::Config(ConfigError::new("ledger.tls", "required")))?;
        Ok(files.load()?)
    }

    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() {
            return Err(ConfigError::new(
                "ledger.tls",
                "cert, key and client_ca are required (auditors authenticate with mTLS)",
            ));
        }
        if self.signing_key.is_none() {
            return Err(ConfigError::new(
                "ledger.signing_key",
                "the checkpoint signing key (Ed25519 PKCS#8 PEM) is required",
            ));
        }
        if self.origin.is_empty()
            || self
                .origin
                .chars()
                .any(|c| c.is_whitespace() || c == '+' || c.is_control())
        {
            return Err(ConfigError::new(
                "ledger.origin",
                format!(
                    "non-empty, without spaces or '+' (it is also the key name), got {:?}",
                    self.origin
                ),
            ));
        }
        if self.checkpoint_every == 0 {
            return Err(ConfigError::new("ledger.checkpoint_every", "at least 1"));
        }
        if self.checkpoint_interval < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "ledger.checkpoint_interval",
                "at least 1 second",
            ));
        }
        if !(1..=100_000).contains(&self.max_batch) {
            return Err(ConfigError::new(
                "ledger.max_batch",
                format!("between 1 and 100000, got {}", self.max_batch),
            ));
        }
        Ok(())
    }
}
