//! Running services: `hazchem dev` (everything, embedded) and `hazchem serve <service>`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hazchem_bus::Bus;
use hazchem_gateway::{Gateway, GatewayConfig, Metrics, Publisher};
use hazchem_kit::{EventSink, ServerTlsFiles};
use hazchem_ledger::{Ledger, LedgerConfig};
use hazchem_pki::{DevPki, Principal};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{BusConfig, Config, serve_metrics};

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the bus, the services' state and the development PKI live.
    #[arg(long, env = "HAZCHEM_DATA_DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// The gateway's address.
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
    /// The Prometheus endpoint's address.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_listen: SocketAddr,
    /// The audit ledger's address (default 127.0.0.1:7444 with the default --listen, else a free port).
    #[arg(long)]
    pub ledger_listen: Option<SocketAddr>,
    /// The credit service's address (default 127.0.0.1:7445 with the default --listen, else a free port).
    #[arg(long)]
    pub credit_listen: Option<SocketAddr>,
    /// The enforcement service's address (default 127.0.0.1:7446 with the default --listen, else a free
    /// port).
    #[arg(long)]
    pub enforcement_listen: Option<SocketAddr>,
}

/// Everything in one process on the embedded bus.
pub async fn dev(args: DevArgs, shutdown: CancellationToken) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let pki =
        DevPki::generate(&args.data_dir.join("pki")).context("creating the development PKI")?;
    let config = Config {
        bus: BusConfig::Embedded {
            dir: args.data_dir.join("bus"),
        },
        metrics_listen: Some(args.metrics_listen),
        gateway: GatewayConfig {
            listen: args.listen,
            tls: Some(ServerTlsFiles {
                cert: pki.server_cert_path(),
                key: pki.server_key_path(),
                client_ca: pki.ca_cert_path(),
            }),
            signing_keys: Some(pki.key_registry_path()),
            ..GatewayConfig::default()
        },
        ledger: LedgerConfig {
            listen: args.ledger_listen.unwrap_or_else(|| {
                let port = if args.listen.port() == 7443 { 7444 } else { 0 };
                SocketAddr::new(args.listen.ip(), port)
            }),
            store: args.data_dir.join("ledger"),
            tls: Some(ServerTlsFiles {
                cert: pki.server_cert_path(),
                key: pki.server_key_path(),
                client_ca: pki.ca_cert_path(),
            }),
            signing_key: Some(pki.ledger_signing_key_path()),
            ..LedgerConfig::default()
        },
        credit: hazchem_credit::CreditConfig {
            listen: args.credit_listen.unwrap_or_else(|| {
                let port = if args.listen.port() == 7443 { 7445 } else { 0 };
                SocketAddr::new(args.listen.ip(), port)
            }),
            state: args.data_dir.join("credit"),
            tls: Some(ServerTlsFiles {
                cert: pki.server_cert_path(),
                key: pki.server_key_path(),
                client_ca: pki.ca_cert_path(),
            }),
            ..hazchem_credit::CreditConfig::default()
        },
        enforcement: hazchem_enforcement::EnforcementConfig {
            listen: args.enforcement_listen.unwrap_or_else(|| {
                let port = if args.listen.port() == 7443 { 7446 } else { 0 };
                SocketAddr::new(args.listen.ip(), port)
            }),
            store: args.data_dir.join("enforcement"),
            tls: Some(ServerTlsFiles {
                cert: pki.server_cert_path(),
                key: pki.server_key_path(),
                client_ca: pki.ca_cert_path(),
            }),
            ..hazchem_enforcement::EnforcementConfig::default()
        },
    };
    config.validate()?;
    let bus = config.bus.open().await?;
    let running = start(
        &config,
        bus,
        &[
            Service::Gateway,
            Service::Ledger,
            Service::Credit,
            Service::Enforcement,
        ],
        shutdown.clone(),
    )
    .await?;
    print_dev_banner(&args, &running);
    running.wait().await
}

/// The services `hazchem serve` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Gateway,
    /// The audit ledger: Merkle log, signed checkpoints, proofs, replay.
    Ledger,
    /// Credit constraint: the registry of sanction listings, Check/GetHistory/ListListings, the review of
    /// credit decisions, conflict warnings.
    Credit,
    /// Joint enforcement: tasks, reproducible draws of targets and inspectors, transfers to public
    /// security, deadlines and escalation.
    Enforcement,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which service to run.
    pub service: Service,
    /// Configuration file (TOML); `HAZCHEM_` environment variables override it.
    #[arg(long, env = "HAZCHEM_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn serve(args: ServeArgs, shutdown: CancellationToken) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let bus = config.bus.open().await?;
    start(&config, bus, &[args.service], shutdown)
        .await?
        .wait()
        .await
}

/// Services started in this process.
pub struct Running {
    pub gateway: Option<SocketAddr>,
    pub ledger: Option<SocketAddr>,
    pub credit: Option<SocketAddr>,
    pub enforcement: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    tasks: tokio::task::JoinSet<Result<()>>,
}

impl Running {
    /// Waits until every service has stopped; the first failure stops the process.
    pub async fn wait(mut self) -> Result<()> {
        while let Some(done) = self.tasks.join_next().await {
            done.context("a service panicked")??;
        }
        Ok(())
    }
}

/// Starts `services` on `bus`; they stop when `shutdown` is cancelled.
pub async fn start(
    config: &Config,
    bus: Bus,
    services: &[Service],
    shutdown: CancellationToken,
) -> Result<Running> {
    let mut registry = Registry::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut gateway_addr = None;
    let mut ledger_addr = None;
    let mut credit_addr = None;
    let mut enforcement_addr = None;
    // One publishing core per process: the gateway serves it to departments, and the services in this
    // process publish their own events through it.
    let publisher = Publisher::from_config(
        &config.gateway,
        bus.clone(),
        Metrics::register(&mut registry),
    )?;
    // The credit service reviews credit decisions before the gateway appends them: opened before the
    // gateway is built, its guard added to the publishing core; a gateway whose credit service runs in
    // another process asks it over gRPC (`credit.remote`).
    let credit = if services.contains(&Service::Credit) {
        Some(hazchem_credit::Credit::open(
            &config.credit,
            publisher.admission().policy().clone(),
        )?)
    } else {
        None
    };
    let publisher = match (&credit, &config.credit.remote) {
        (Some(credit), _) => publisher.with_guard(std::sync::Arc::new(
            hazchem_credit::CreditGuard::new(credit.clone()),
        )),
        (None, Some(remote)) if services.contains(&Service::Gateway) => publisher.with_guard(
            std::sync::Arc::new(hazchem_credit::RemoteCreditGuard::connect(remote)?),
        ),
        _ => publisher,
    };
    for service in services {
        match service {
            Service::Gateway => {
                let gateway = Gateway::new(&config.gateway, publisher.clone(), shutdown.clone())?;
                let listener = TcpListener::bind(config.gateway.listen)
                    .await
                    .with_context(|| format!("binding the gateway to {}", config.gateway.listen))?;
                gateway_addr = Some(listener.local_addr()?);
                let shutdown = shutdown.clone();
                tasks.spawn(async move { Ok(gateway.serve(listener, shutdown).await?) });
            }
            Service::Ledger => {
                let ledger = Ledger::from_config(&config.ledger)?;
                let tls = config.ledger.server_tls()?;
                let listener = TcpListener::bind(config.ledger.listen)
                    .await
                    .with_context(|| format!("binding the ledger to {}", config.ledger.listen))?;
                ledger_addr = Some(listener.local_addr()?);
                let sink = EventSink::new(
                    publisher.clone(),
                    Principal::service(hazchem_ledger::SERVICE_NAME)?,
                );
                let (bus, shutdown) = (bus.clone(), shutdown.clone());
                tasks.spawn(async move {
                    Ok(hazchem_ledger::run_service(
                        ledger,
                        bus,
                        Some(sink),
                        listener,
                        tls,
                        shutdown,
                    )
                    .await?)
                });
            }
            Service::Credit => {
                let credit = credit.clone().expect("opened above");
                let tls = config.credit.server_tls()?;
                let listener =
                    TcpListener::bind(config.credit.listen)
                        .await
                        .with_context(|| {
                            format!("binding the credit service to {}", config.credit.listen)
                        })?;
                credit_addr = Some(listener.local_addr()?);
                let sink = EventSink::new(
                    publisher.clone(),
                    Principal::service(hazchem_credit::SERVICE_NAME)?,
                );
                let (bus, shutdown) = (bus.clone(), shutdown.clone());
                tasks.spawn(async move {
                    Ok(
                        hazchem_credit::run_service(credit, bus, sink, listener, tls, shutdown)
                            .await?,
                    )
                });
            }
            Service::Enforcement => {
                let sink = EventSink::new(
                    publisher.clone(),
                    Principal::service(hazchem_enforcement::SERVICE_NAME)?,
                );
                let enforcement = hazchem_enforcement::Enforcement::from_config(
                    &config.enforcement,
                    bus.clone(),
                    sink,
                )
                .await?;
                let tls = config.enforcement.server_tls()?;
                let listener = TcpListener::bind(config.enforcement.listen)
                    .await
                    .with_context(|| {
                        format!(
                            "binding the enforcement service to {}",
                            config.enforcement.listen
                        )
                    })?;
                enforcement_addr = Some(listener.local_addr()?);
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    Ok(
                        hazchem_enforcement::run_service(enforcement, listener, tls, shutdown)
                            .await?,
                    )
                });
            }
        }
    }
    let metrics = match config.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, registry, shutdown.clone()).await?),
        None => None,
    };
    Ok(Running {
        gateway: gateway_addr,
        ledger: ledger_addr,
        credit: credit_addr,
        enforcement: enforcement_addr,
        metrics,
        tasks,
    })
}

fn print_dev_banner(args: &DevArgs, running: &Running) {
    let exe = std::env::args().next().unwrap_or_else(|| "hazchem".into());
    let data = args.data_dir.display();
    let gateway = running.gateway.map(|a| a.to_string()).unwrap_or_default();
    let port = running.gateway.map(|a| a.port()).unwrap_or_default();
    let endpoint = if port == 7443 {
        String::new()
    } else {
        format!(" --endpoint https://localhost:{port}")
    };
    let dir = if args.data_dir == crate::default_data_dir() {
        String::new()
    } else {
        format!(" --data-dir {data}")
    };
    let ledger_port = running.ledger.map(|a| a.port()).unwrap_or_default();
    let ledger = if ledger_port == 7444 {
        String::new()
    } else {
        format!(" --ledger https://localhost:{ledger_port}")
    };
    let credit_port = running.credit.map(|a| a.port()).unwrap_or_default();
    let credit = if credit_port == 7445 {
        String::new()
    } else {
        format!(" --endpoint https://localhost:{credit_port}")
    };
    let enforcement_port = running.enforcement.map(|a| a.port()).unwrap_or_default();
    let enforcement = if enforcement_port == 7446 {
        String::new()
    } else {
        format!(" --endpoint https://localhost:{enforcement_port}")
    };
    println!(
        "\nHazchem Bus is running (development mode, embedded bus).\n\
         \n  gateway   https://localhost:{port}  ({gateway}; mTLS, development CA in {data}/pki)\
         \n  ledger    https://localhost:{ledger_port}  (audit service; checkpoint key {data}/pki/ledger.pub)\
         \n  credit    https://localhost:{credit_port}  (credit registry: {exe} credit check <uscc> --as emergency{credit}{dir})\
         \n  enforce   https://localhost:{enforcement_port}  (joint tasks: {exe} enforcement list --as emergency{enforcement}{dir})\
         \n  metrics   http://{}/metrics\
         \n  data      {data}\
         \n\nIn another terminal, from this directory:\
         \n  follow everything, as the fire department:\
         \n    {exe} tail --as fire{endpoint}{dir}\
         \n  publish a signed licence decision, as emergency management:\
         \n    {exe} publish --as emergency --sign{endpoint}{dir} tests/fixtures/events/licence_issued.json\
         \n  verify the whole record against the ledger's signed checkpoint, trusting only its public key:\
         \n    {exe} audit verify{ledger}{dir}\
         \n  prove that one event is in the record, or export an offline bundle and check it:\
         \n    {exe} audit prove <event-id>{ledger}{dir}\
         \n    {exe} audit export --out audit-bundle{ledger}{dir}\
         \n    {exe} audit verify --bundle audit-bundle --key {data}/pki/ledger.pub\
         \n\nCtrl-C stops it; everything published stays in {data}/bus.\n",
        running
            .metrics
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
    );
}
