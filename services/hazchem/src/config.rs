//! The configuration of every service in one file: built-in defaults, then the TOML file, then
//! `HAZCHEM_` environment variables (nested keys joined by `__`, for example
//! `HAZCHEM_GATEWAY__LISTEN=0.0.0.0:7443`), then command-line flags; then `validate()`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use hazchem_bus::{Bus, JetStreamConfig};
use hazchem_gateway::GatewayConfig;
use serde::{Deserialize, Serialize};

/// Which bus carries the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BusConfig {
    /// The embedded bus: a directory on this machine (one process only).
    Embedded { dir: PathBuf },
    /// NATS JetStream.
    Jetstream {
        /// Server URLs, comma-separated.
        url: String,
        #[serde(default = "default_stream")]
        stream: String,
        #[serde(default = "default_replicas")]
        replicas: usize,
        /// NATS credentials file of this service's NATS user.
        credentials_file: Option<PathBuf>,
        /// CA of the NATS servers' TLS certificates.
        tls_ca_file: Option<PathBuf>,
        /// nkey seed file of this process's own NATS user (see `hazchem deploy nats`).
        nkey_seed_file: Option<PathBuf>,
        /// Principal name → nkey seed file: the gateway publishes and reads as each department's own
        /// NATS user, so NATS checks the policy again.
        #[serde(default)]
        principal_credentials: std::collections::BTreeMap<String, PathBuf>,
        /// Whether this process creates and updates the stream and cursor bucket (false for service
        /// users, which may only look them up).
        #[serde(default = "default_manage")]
        manage: bool,
    },
}

fn default_manage() -> bool {
    true
}

fn default_stream() -> String {
    hazchem_bus::DEFAULT_STREAM.to_owned()
}

fn default_replicas() -> usize {
    1
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig::Embedded {
            dir: PathBuf::from(".hazchem/bus"),
        }
    }
}

impl BusConfig {
    /// Opens the bus.
    pub async fn open(&self) -> Result<Bus> {
        match self {
            BusConfig::Embedded { dir } => Bus::embedded(dir)
                .await
                .with_context(|| format!("opening the embedded bus at {}", dir.display())),
            BusConfig::Jetstream {
                url,
                stream,
                replicas,
                credentials_file,
                tls_ca_file,
                nkey_seed_file,
                principal_credentials,
                manage,
            } => {
                let mut config = JetStreamConfig::new(url.clone());
                config.stream = stream.clone();
                config.replicas = *replicas;
                config.credentials_file = credentials_file.clone();
                config.tls_ca_file = tls_ca_file.clone();
                config.nkey_seed_file = nkey_seed_file.clone();
                config.principal_credentials = principal_credentials.clone();
                config.manage = *manage;
                Bus::jetstream(&config)
                    .await
                    .with_context(|| format!("connecting to JetStream at {url}"))
            }
        }
    }
}

/// The settings of the process itself (the file's top level and its `[gateway]` section); every other
/// service's section is read by that service's launcher ([`Config::section`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Process {
    // Not among the figment defaults: merged key by key, the default's `dir` would stay in a file's
    // `kind = "jetstream"` table and be refused; a missing `bus` is filled by `#[serde(default)]`.
    #[serde(skip_serializing)]
    bus: BusConfig,
    metrics_listen: Option<SocketAddr>,
    checkpoint_key: Option<PathBuf>,
    gateway: GatewayConfig,
}

impl Default for Process {
    fn default() -> Self {
        Process {
            bus: BusConfig::default(),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            checkpoint_key: None,
            gateway: GatewayConfig::default(),
        }
    }
}

/// The keys of the top level that are not a launcher's section: the process's own, and the witness's
/// section (a witness is started without a bus, by `run.rs` itself).
const PROCESS_KEYS: &[&str] = &[
    "bus",
    "metrics_listen",
    "checkpoint_key",
    "gateway",
    hazchem_witness::SERVICE_NAME,
];

/// Configuration of a process running one or more services.
#[derive(Debug, Clone)]
pub struct Config {
    pub bus: BusConfig,
    /// Where Prometheus scrapes `/metrics`; unset disables the endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// The ledger's public key (`ledger.pub`, or its C2SP verifier key): before deriving anything from
    /// the stream, every service checks it against the latest checkpoint the ledger signed into it, and
    /// refuses a stream that disagrees. Unset: the services do not check (the ledger always checks the
    /// stream against its own key).
    pub checkpoint_key: Option<PathBuf>,
    /// The gateway; its `policy` and limits also govern what this process's services publish.
    pub gateway: GatewayConfig,
    /// Everything, for the services' own sections.
    figment: Figment,
}

impl Config {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Process::default()));
        if let Some(file) = file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file(file));
        }
        Config::from_figment(figment.merge(Env::prefixed("HAZCHEM_").split("__")))
    }

    /// The configuration `figment` holds: the process's settings, and a section per service named by
    /// its launcher (an unknown top-level key is refused, naming it); then `validate()`.
    pub fn from_figment(figment: Figment) -> Result<Config> {
        let keys: std::collections::BTreeMap<String, figment::value::Value> =
            figment.extract().context("invalid configuration")?;
        for key in keys.keys() {
            anyhow::ensure!(
                PROCESS_KEYS.contains(&key.as_str()) || crate::launch::launcher(key).is_some(),
                "invalid configuration: unknown key `{key}` (expected {}, or a service's section: {})",
                PROCESS_KEYS.join(", "),
                crate::launch::LAUNCHERS
                    .iter()
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let process: Process = figment.extract().context("invalid configuration")?;
        let config = Config {
            bus: process.bus,
            metrics_listen: process.metrics_listen,
            checkpoint_key: process.checkpoint_key,
            gateway: process.gateway,
            figment,
        };
        // Every service's section is read now, so that a mistake in any stops the process at once.
        for launcher in crate::launch::LAUNCHERS {
            launcher.listen(&config)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// The section `name` (a service's), its defaults filling what it leaves out.
    pub fn section<C: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<C> {
        if !self.figment.contains(name) {
            return Ok(C::default());
        }
        self.figment
            .extract_inner(name)
            .with_context(|| format!("invalid configuration: section [{name}]"))
    }

    /// Checks what applies to every service; each service checks its own section when it starts.
    pub fn validate(&self) -> Result<()> {
        if let BusConfig::Jetstream { replicas, .. } = &self.bus {
            anyhow::ensure!(
                matches!(replicas, 1 | 3 | 5),
                "bus.replicas: 1, 3 or 5, got {replicas}"
            );
        }
        Ok(())
    }
}

/// Serves `/metrics` until `shutdown`.
pub async fn serve_metrics(
    addr: SocketAddr,
    registry: prometheus_client::registry::Registry,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<SocketAddr> {
    use std::sync::Arc;
    let registry = Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    ),
                    Err(_) => ([("content-type", "text/plain")], String::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "metrics endpoint failed");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every server of the service table but the gateway has a launcher, and every launcher a row.
    #[test]
    fn every_server_in_the_table_has_a_launcher() {
        let servers: Vec<&str> = hazchem_pki::services::servers()
            .map(|s| s.name)
            .filter(|n| ![hazchem_gateway::SERVICE_NAME, hazchem_witness::SERVICE_NAME].contains(n))
            .collect();
        let launchers: Vec<&str> = crate::launch::LAUNCHERS.iter().map(|l| l.name()).collect();
        assert_eq!(servers, launchers);
    }

    /// A file's section overrides a service's defaults key by key, and the environment overrides the
    /// file; an unknown top-level key or a mistake in a section is refused, naming it.
    #[test]
    fn sections_are_read_by_their_service_and_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hazchem.toml");
        std::fs::write(
            &file,
            "checkpoint_key = \"ledger.pub\"\n[enforcement]\nstore = \"/var/lib/enforcement\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&file)).unwrap();
        let enforcement: hazchem_enforcement::EnforcementConfig =
            config.section("enforcement").unwrap();
        assert_eq!(enforcement.store, PathBuf::from("/var/lib/enforcement"));
        assert_eq!(
            enforcement.listen,
            hazchem_enforcement::EnforcementConfig::default().listen
        );
        assert_eq!(config.checkpoint_key, Some(PathBuf::from("ledger.pub")));
        let ledger: hazchem_ledger::LedgerConfig = config.section("ledger").unwrap();
        assert_eq!(ledger, hazchem_ledger::LedgerConfig::default());

        std::fs::write(&file, "[enforcment]\nstore = \"x\"\n").unwrap();
        let error = format!("{:#}", Config::load(Some(&file)).unwrap_err());
        assert!(error.contains("unknown key `enforcment`"), "{error}");

        std::fs::write(&file, "[warning]\nstroe = \"x\"\n").unwrap();
        let error = format!("{:#}", Config::load(Some(&file)).unwrap_err());
        assert!(
            error.contains("section [warning]") && error.contains("stroe"),
            "{error}"
        );
    }
}
