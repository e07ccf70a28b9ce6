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
    /// Witnesses asked to cosign each checkpoint (`[[ledger.witnesses]]`), in process or remote; their
    /// cosignatures are appended to the stored note. `hazchem dev` runs one per department, each its own
    /// HTTP server on loopback, and asks them as remote witnesses.
    pub witnesses: Vec<WitnessConfig>,
}

/// A witness the ledger asks to cosign each checkpoint (`[[ledger.witnesses]]`): in the ledger's process
/// (`name`, `signing_key`, `state`: the ledger's operator then holds its key), or one a department runs
/// itself (`url`, `key`, and `ca` for https), reached over the C2SP tlog-witness protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessConfig {
    /// In process: the witness's name (the key name of its cosignatures), e.g.
    /// `hazchem.example/witness/POL`.
    pub name: Option<String>,
    /// In process: its cosigning key (Ed25519, PKCS#8 PEM).
    pub signing_key: Option<PathBuf>,
    /// In process: its state file (JSON): the last checkpoint it cosigned per log, so that a restart
    /// keeps refusing forks.
    pub state: Option<PathBuf>,
    /// Remote: where it serves `add-checkpoint` (`https://witness.psb.example:7448`, or `http://` behind
    /// the department's own TLS).
    pub url: Option<String>,
    /// Remote: its verifier key, `<name>+<key id hex>+<base64(0x04 || key)>`; only cosignatures that
    /// verify with it are kept.
    pub key: Option<String>,
    /// Remote, https: the CA file (PEM) its certificate chains to.
    pub ca: Option<PathBuf>,
}

/// Which form a [`WitnessConfig`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WitnessForm<'a> {
    Local {
        name: &'a str,
        signing_key: &'a std::path::Path,
        state: &'a std::path::Path,
    },
    Remote {
        url: &'a str,
        key: &'a str,
        ca: Option<&'a std::path::Path>,
    },
}

impl WitnessConfig {
    /// A witness in the ledger's process.
    pub fn local(name: impl Into<String>, signing_key: PathBuf, state: PathBuf) -> Self {
        WitnessConfig {
            name: Some(name.into()),
            signing_key: Some(signing_key),
            state: Some(state),
            ..WitnessConfig::default()
        }
    }

    /// A witness reached at `url`, whose cosignatures verify with `key` (`ca` for https).
    pub fn remote(
        url: impl Into<String>,
        key: &crate::witness::WitnessKey,
        ca: Option<PathBuf>,
    ) -> Self {
        WitnessConfig {
            url: Some(url.into()),
            key: Some(key.to_vkey()),
            ca,
            ..WitnessConfig::default()
        }
    }

    pub(crate) fn form(&self) -> Result<WitnessForm<'_>, ConfigError> {
        let setting = "ledger.witnesses";
        match self {
            WitnessConfig {
                name: Some(name),
                signing_key: Some(signing_key),
                state: Some(state),
                url: None,
                key: None,
                ca: None,
            } => Ok(WitnessForm::Local {
                name,
                signing_key,
                state,
            }),
            WitnessConfig {
                name: None,
                signing_key: None,
                state: None,
                url: Some(url),
                key: Some(key),
                ca,
            } => Ok(WitnessForm::Remote {
                url,
                key,
                ca: ca.as_deref(),
            }),
            _ => Err(ConfigError::new(
                setting,
                "each witness is either in process (name, signing_key and state) or remote (url and key, \
                 and ca for https), not a mix",
            )),
        }
    }
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
        for witness in &self.witnesses {
            witness.form()?;
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
