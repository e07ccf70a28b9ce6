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

/// Configuration of a process running one or more services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    // Not among the figment defaults: merged key by key, the default's `dir` would stay in a file's
    // `kind = "jetstream"` table and be refused; a missing `bus` is filled by `#[serde(default)]`.
    #[serde(skip_serializing)]
    pub bus: BusConfig,
    /// Where Prometheus scrapes `/metrics`; unset disables the endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// The gateway; its `policy` and limits also govern what this process's services publish.
    pub gateway: GatewayConfig,
    /// The credit service (`hazchem serve credit`), and for a gateway without it, `credit.remote`.
    pub credit: hazchem_credit::CreditConfig,
    /// The audit ledger (`hazchem serve ledger`).
    pub ledger: hazchem_ledger::LedgerConfig,
    /// Joint enforcement (`hazchem serve enforcement`).
    pub enforcement: hazchem_enforcement::EnforcementConfig,
    /// Early warning (`hazchem serve warning`).
    pub warning: hazchem_warning::WarningConfig,
    /// A department's witness (`hazchem serve witness`), which needs no bus.
    pub witness: hazchem_witness::WitnessServiceConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bus: BusConfig::default(),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            gateway: GatewayConfig::default(),
            credit: hazchem_credit::CreditConfig::default(),
            ledger: hazchem_ledger::LedgerConfig::default(),
            enforcement: hazchem_enforcement::EnforcementConfig::default(),
            warning: hazchem_warning::WarningConfig::default(),
            witness: hazchem_witness::WitnessServiceConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file(file));
        }
        let config: Config = figment
            .merge(Env::prefixed("HAZCHEM_").split("__"))
            .extract()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
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
