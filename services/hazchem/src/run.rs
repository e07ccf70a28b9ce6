//! Running services: `hazchem dev` (everything, embedded) and `hazchem serve <service>`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hazchem_bus::Bus;
use hazchem_gateway::{Gateway, GatewayConfig, Metrics, Publisher, ServerTlsFiles};
use hazchem_pki::DevPki;
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
    };
    config.validate()?;
    let bus = config.bus.open().await?;
    let running = start(&config, bus, &[Service::Gateway], shutdown.clone()).await?;
    print_dev_banner(&args, &running);
    running.wait().await
}

/// The services `hazchem serve` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Gateway,
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
    // One publishing core per process: the gateway serves it to departments, and the services in this
    // process publish their own events through it.
    let publisher = Publisher::from_config(
        &config.gateway,
        bus.clone(),
        Metrics::register(&mut registry),
    )?;
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
        }
    }
    let metrics = match config.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, registry, shutdown.clone()).await?),
        None => None,
    };
    Ok(Running {
        gateway: gateway_addr,
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
    println!(
        "\nHazchem Bus is running (development mode, embedded bus).\n\
         \n  gateway   https://localhost:{port}  ({gateway}; mTLS, development CA in {data}/pki)\
         \n  metrics   http://{}/metrics\
         \n  data      {data}\
         \n\nIn another terminal, from this directory:\
         \n  follow everything, as the fire department:\
         \n    {exe} tail --as fire{endpoint}{dir}\
         \n  publish a signed licence decision, as emergency management:\
         \n    {exe} publish --as emergency --sign{endpoint}{dir} tests/fixtures/events/licence_issued.json\
         \n\nCtrl-C stops it; everything published stays in {data}/bus.\n",
        running
            .metrics
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
    );
}
