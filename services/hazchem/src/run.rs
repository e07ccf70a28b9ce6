//! Running services: `hazchem dev` (everything, embedded) and `hazchem serve <service>`.
//!
//! Which services there are, their default ports, which of them `hazchem dev` runs and what its banner
//! says of them come from the service table, [`hazchem_pki::services::SERVICES`]; how each is configured
//! for `hazchem dev`, opened and run comes from its launcher ([`crate::launch`]). This module is the same
//! for all of them, but for the gateway, which it starts itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use figment::Figment;
use figment::providers::Serialized;
use hazchem_bus::Bus;
use hazchem_domain::Department;
use hazchem_gateway::{Gateway, GatewayConfig, Metrics, Publisher};
use hazchem_kit::{Dev, EventSink, Serve, ServerTlsFiles, Shared};
use hazchem_pki::services::{self, Service};
use hazchem_pki::{DevPki, Principal};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{BusConfig, Config, serve_metrics};

/// The port of the first of `hazchem dev`'s nine witnesses (one per department, in
/// [`Department::ALL`] order).
pub const DEV_WITNESS_PORT: u16 = 7450;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the bus, the services' state and the development PKI live.
    #[arg(long, env = "HAZCHEM_DATA_DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// The gateway's address.
    #[arg(long, default_value_t = services::default_listen(hazchem_gateway::SERVICE_NAME))]
    pub listen: SocketAddr,
    /// The Prometheus endpoint's address.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_listen: SocketAddr,
    /// `--<service>-listen` for every other service `hazchem dev` runs.
    #[command(flatten)]
    pub service_listen: ServiceListen,
}

impl DevArgs {
    /// The port of the `n`th development witness: 7450 + n with the gateway's default `--listen` port,
    /// else a free one.
    fn dev_witness_port(&self, n: usize) -> u16 {
        let gateway_default = services::default_listen(hazchem_gateway::SERVICE_NAME).port();
        if self.listen.port() == gateway_default {
            DEV_WITNESS_PORT + n as u16
        } else {
            0
        }
    }

    /// Where `service` listens: the gateway on `--listen`; any other on its `--<service>-listen`, else on
    /// `--listen`'s address with its own default port when `--listen` has the gateway's default port,
    /// and on a free port otherwise (so that several `hazchem dev` can run side by side).
    fn listen_of(&self, service: &Service) -> SocketAddr {
        if service.name == hazchem_gateway::SERVICE_NAME {
            return self.listen;
        }
        if let Some(addr) = self.service_listen.0.get(service.name) {
            return *addr;
        }
        let gateway_default = services::default_listen(hazchem_gateway::SERVICE_NAME).port();
        let port = match service.port {
            Some(port) if self.listen.port() == gateway_default => port,
            _ => 0,
        };
        SocketAddr::new(self.listen.ip(), port)
    }
}

/// The addresses given by `--<service>-listen`: one flag for every service of the table that
/// `hazchem dev` runs, except the gateway (whose address is `--listen`).
#[derive(Debug, Clone, Default)]
pub struct ServiceListen(BTreeMap<&'static str, SocketAddr>);

impl ServiceListen {
    /// The services with a flag.
    fn services() -> impl Iterator<Item = &'static Service> {
        services::dev().filter(|s| s.name != hazchem_gateway::SERVICE_NAME)
    }

    /// `<service>-listen`: the flag's name and its argument id.
    fn flag(service: &Service) -> String {
        format!("{}-listen", service.name)
    }
}

impl clap::Args for ServiceListen {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Self::services().fold(cmd, |cmd, service| {
            let port = service.port.unwrap_or_default();
            cmd.arg(
                clap::Arg::new(Self::flag(service))
                    .long(Self::flag(service))
                    .value_name(format!(
                        "{}_LISTEN",
                        service.name.to_ascii_uppercase().replace('-', "_")
                    ))
                    .value_parser(clap::value_parser!(SocketAddr))
                    .help(format!(
                        "The {} service's address (default 127.0.0.1:{port} with the default --listen, \
                         else a free port)",
                        service.name
                    )),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for ServiceListen {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut listen = ServiceListen::default();
        listen.update_from_arg_matches(matches)?;
        Ok(listen)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for service in Self::services() {
            if let Some(addr) = matches.get_one::<SocketAddr>(&Self::flag(service)) {
                self.0.insert(service.name, *addr);
            }
        }
        Ok(())
    }
}

/// Everything in one process on the embedded bus: every service the table marks `dev`.
pub async fn dev(args: DevArgs, shutdown: CancellationToken) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let pki =
        DevPki::generate(&args.data_dir.join("pki")).context("creating the development PKI")?;
    // The nine departments' witnesses, each its own HTTPS server on loopback, bound first so that the
    // ledger is configured with their addresses.
    let mut witnesses = Vec::new();
    for (n, department) in Department::ALL.into_iter().enumerate() {
        let addr = SocketAddr::new(args.listen.ip(), args.dev_witness_port(n));
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {} witness to {addr}", department.code()))?;
        witnesses.push((department, listener));
    }
    let addrs: Vec<(Department, SocketAddr)> = witnesses
        .iter()
        .map(|(d, l)| Ok((*d, l.local_addr()?)))
        .collect::<Result<_>>()?;
    let config = dev_config(&args, &pki, &addrs)?;
    let bus = config.bus.open().await?;
    let dev: Vec<&'static Service> = services::dev().collect();
    let mut running = start(&config, bus, &dev, shutdown.clone()).await?;
    for (department, listener) in witnesses {
        let witness = dev_witness_config(&args, &pki, department, listener.local_addr()?);
        start_witness(&mut running, &witness, listener, shutdown.clone())?;
    }
    running.dev_witnesses = addrs;
    print_dev_banner(&args, &running);
    running.wait().await
}

/// The configuration of `department`'s development witness: its key from the development PKI, the
/// ledger's key as the one log it knows, its state in `<data-dir>/witnesses/<code>.json`, HTTPS with the
/// development server certificate.
fn dev_witness_config(
    args: &DevArgs,
    pki: &DevPki,
    department: Department,
    listen: SocketAddr,
) -> hazchem_witness::WitnessServiceConfig {
    hazchem_witness::WitnessServiceConfig {
        listen,
        name: Some(DevPki::witness_name(department)),
        signing_key: Some(pki.witness_signing_key_path(department)),
        state: args
            .data_dir
            .join("witnesses")
            .join(format!("{}.json", department.code())),
        logs: vec![hazchem_witness::LogConfig {
            key: pki.ledger_public_key_path(),
            origin: None,
        }],
        tls: Some(hazchem_witness::TlsFiles {
            cert: pki.server_cert_path(),
            key: pki.server_key_path(),
        }),
    }
}

/// Starts a witness server on `listener` among `running`'s tasks.
fn start_witness(
    running: &mut Running,
    config: &hazchem_witness::WitnessServiceConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<SocketAddr> {
    let server = hazchem_witness::WitnessServer::from_config(config)
        .with_context(|| {
            format!(
                "starting the witness {}",
                config.name.as_deref().unwrap_or("")
            )
        })?
        .with_clock(running.clock.clone());
    let addr = listener.local_addr()?;
    running
        .tasks
        .spawn(async move { Ok(server.serve(listener, shutdown).await?) });
    Ok(addr)
}

/// The configuration `hazchem dev` runs with: the embedded bus in `<data-dir>/bus`, and every service it
/// runs on its address ([`DevArgs::listen_of`]) with the development PKI's server certificate and CA and
/// its state in `<data-dir>/<service>` (each service's section as its launcher says); the ledger asks the
/// departments' witnesses at `witnesses` (started by [`dev`]).
fn dev_config(
    args: &DevArgs,
    pki: &DevPki,
    witnesses: &[(Department, SocketAddr)],
) -> Result<Config> {
    let tls = ServerTlsFiles {
        cert: pki.server_cert_path(),
        key: pki.server_key_path(),
        client_ca: pki.ca_cert_path(),
    };
    let gateway = GatewayConfig {
        listen: args.listen_of(services::get(hazchem_gateway::SERVICE_NAME).expect("a row")),
        tls: Some(tls.clone()),
        signing_keys: Some(pki.key_registry_path()),
        ..GatewayConfig::default()
    };
    let mut figment = Figment::new()
        .merge(Serialized::default(
            "bus",
            BusConfig::Embedded {
                dir: args.data_dir.join("bus"),
            },
        ))
        .merge(Serialized::default("metrics_listen", args.metrics_listen))
        .merge(Serialized::default(
            "checkpoint_key",
            pki.ledger_public_key_path(),
        ))
        .merge(Serialized::default("gateway", gateway));
    for service in services::dev() {
        if service.name == hazchem_gateway::SERVICE_NAME {
            continue;
        }
        let launcher = crate::launch::launcher(service.name).with_context(|| {
            format!(
                "the service table has `hazchem dev` run `{}`, which this binary has no launcher for \
                 (services/hazchem/src/launch.rs)",
                service.name
            )
        })?;
        figment = figment.merge(launcher.dev(&Dev {
            listen: args.listen_of(service),
            tls: tls.clone(),
            state: args.data_dir.join(service.name),
            data_dir: &args.data_dir,
            pki,
        }));
    }
    // One witness per department, each its own HTTPS server, asked over the tlog-witness protocol as a
    // department's own witness would be.
    let witness_keys = pki.witness_keys()?;
    let witnesses: Vec<hazchem_ledger::WitnessConfig> = witnesses
        .iter()
        .map(|(d, addr)| {
            let key = Department::ALL
                .iter()
                .position(|x| x == d)
                .map(|i| &witness_keys[i])
                .expect("a key for each department");
            hazchem_ledger::WitnessConfig::remote(
                format!("https://localhost:{}", addr.port()),
                key,
                Some(pki.ca_cert_path()),
            )
        })
        .collect();
    let figment = figment.merge(Serialized::default(
        &format!("{}.witnesses", hazchem_ledger::SERVICE_NAME),
        witnesses,
    ));
    Config::from_figment(figment)
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which service to run.
    #[arg(value_parser = served_service())]
    pub service: &'static Service,
    /// Configuration file (TOML); `HAZCHEM_` environment variables override it.
    #[arg(long, env = "HAZCHEM_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `hazchem serve`'s argument: a service of the table with a server, by name.
fn served_service() -> impl clap::builder::TypedValueParser<Value = &'static Service> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new(services::servers().map(|s| PossibleValue::new(s.name).help(s.about)))
        .map(|name| services::get(&name).expect("one of the possible values"))
}

pub async fn serve(args: ServeArgs, shutdown: CancellationToken) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    if args.service.name == hazchem_witness::SERVICE_NAME {
        // A department's witness touches no bus: it only answers the ledger's add-checkpoint calls.
        let witness: hazchem_witness::WitnessServiceConfig =
            config.section(hazchem_witness::SERVICE_NAME)?;
        let listener = TcpListener::bind(witness.listen)
            .await
            .with_context(|| format!("binding the witness to {}", witness.listen))?;
        let mut running = Running::new(hazchem_kit::SystemClock::shared());
        let addr = start_witness(&mut running, &witness, listener, shutdown)?;
        running.services.push((args.service, addr));
        return running.wait().await;
    }
    let bus = config.bus.open().await?;
    start(&config, bus, &[args.service], shutdown)
        .await?
        .wait()
        .await
}

/// Services started in this process.
pub struct Running {
    /// Each service started, with the address it listens on, in the order started.
    pub services: Vec<(&'static Service, SocketAddr)>,
    /// `hazchem dev`'s witnesses, one per department.
    pub dev_witnesses: Vec<(Department, SocketAddr)>,
    pub metrics: Option<SocketAddr>,
    clock: hazchem_kit::SharedClock,
    tasks: tokio::task::JoinSet<Result<()>>,
}

impl Running {
    fn new(clock: hazchem_kit::SharedClock) -> Self {
        Running {
            services: Vec::new(),
            dev_witnesses: Vec::new(),
            metrics: None,
            clock,
            tasks: tokio::task::JoinSet::new(),
        }
    }

    /// Where the service `name` listens, if it runs here.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.services
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, addr)| *addr)
    }

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
    services: &[&'static Service],
    shutdown: CancellationToken,
) -> Result<Running> {
    let mut registry = Registry::default();
    // Every projection's position, lag and apply latency, and every gRPC call, of this process.
    hazchem_kit::metrics::register(&mut registry);
    // One publishing core per process: the gateway serves it to departments, and the services in this
    // process publish their own events through it.
    let publisher = Publisher::from_config(
        &config.gateway,
        bus.clone(),
        Metrics::register(&mut registry),
    )?;
    // One clock per process: every rule about time (admission, deadlines, term ends, checkpoints)
    // reads it.
    let mut running = Running::new(hazchem_kit::SystemClock::shared());
    let shared = Shared {
        bus: bus.clone(),
        clock: running.clock.clone(),
        policy: publisher.admission().policy().clone(),
        checkpoints: checkpoint_key(config, services)?,
    };
    let mut publisher = publisher.with_clock(shared.clock.clone());
    // Every service is opened before anything is served: a guard it hands over (the credit service's
    // review of credit decisions) is in the publishing core before the gateway takes an event.
    let mut opened = Vec::new();
    for &service in services {
        if service.name == hazchem_gateway::SERVICE_NAME {
            continue;
        }
        let launcher = crate::launch::launcher(service.name).with_context(|| {
            format!(
                "the service table gives `{}` a server, but this binary has no launcher for it \
                 (services/hazchem/src/launch.rs)",
                service.name
            )
        })?;
        let mut service_opened = launcher.open(config, &shared).await?;
        if let Some(guard) = service_opened.guard.take() {
            publisher = publisher.with_guard(guard);
        }
        opened.push((service.name, launcher.listen(config)?, service_opened));
    }
    // A gateway whose credit service runs in another process asks that one over gRPC (`credit.remote`).
    let runs = |name: &str| services.iter().any(|s| s.name == name);
    if runs(hazchem_gateway::SERVICE_NAME) && !runs(hazchem_credit::SERVICE_NAME) {
        let credit: hazchem_credit::CreditConfig = config.section(hazchem_credit::SERVICE_NAME)?;
        if let Some(remote) = &credit.remote {
            publisher = publisher.with_guard(std::sync::Arc::new(
                hazchem_credit::RemoteCreditGuard::connect(remote)?,
            ));
        }
    }
    let mut opened = opened.into_iter();
    for &service in services {
        let addr = if service.name == hazchem_gateway::SERVICE_NAME {
            let gateway = Gateway::new(&config.gateway, publisher.clone(), shutdown.clone())?;
            let listener = TcpListener::bind(config.gateway.listen)
                .await
                .with_context(|| format!("binding the gateway to {}", config.gateway.listen))?;
            let addr = listener.local_addr()?;
            let shutdown = shutdown.clone();
            running
                .tasks
                .spawn(async move { Ok(gateway.serve(listener, shutdown).await?) });
            addr
        } else {
            let (name, listen, service_opened) = opened.next().expect("opened in the same order");
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding the {name} service to {listen}"))?;
            let addr = listener.local_addr()?;
            let serve = Serve {
                listener,
                sink: EventSink::new(publisher.clone(), Principal::service(name)?),
                shutdown: shutdown.clone(),
            };
            running.tasks.spawn(async move {
                (service_opened.run)(serve)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))
                    .with_context(|| format!("the {name} service"))
            });
            addr
        };
        running.services.push((service, addr));
    }
    running.metrics = match config.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, registry, shutdown.clone()).await?),
        None => None,
    };
    Ok(running)
}

/// The ledger's key from `checkpoint_key`, which every projection checks the stream against.
fn checkpoint_key(
    config: &Config,
    services: &[&'static Service],
) -> Result<Option<hazchem_kit::VerifierKey>> {
    match &config.checkpoint_key {
        Some(path) => Ok(Some(hazchem_kit::VerifierKey::load(path).with_context(
            || format!("checkpoint_key: reading {}", path.display()),
        )?)),
        None => {
            if services
                .iter()
                .any(|s| s.publishes && s.name != hazchem_ledger::SERVICE_NAME)
            {
                tracing::warn!(
                    "checkpoint_key is not set: the services do not check the stream against the \
                     ledger's signed checkpoints"
                );
            }
            Ok(None)
        }
    }
}

/// What the banner says about a running service after its address: its row's `banner`, else its
/// `about`.
fn banner_note(
    service: &Service,
    addr: SocketAddr,
    flag: &dyn Fn(&str, &str) -> String,
    exe: &str,
    data: &str,
    dir: &str,
) -> String {
    match service.banner {
        Some(template) => template
            .replace("{exe}", exe)
            .replace("{data}", data)
            .replace("{addr}", &addr.to_string())
            .replace("{endpoint}", &flag(service.name, "--endpoint"))
            .replace("{dir}", dir),
        None => service.about.to_owned(),
    }
}

fn print_dev_banner(args: &DevArgs, running: &Running) {
    let exe = std::env::args().next().unwrap_or_else(|| "hazchem".into());
    let data = args.data_dir.display().to_string();
    let dir = if args.data_dir == crate::default_data_dir() {
        String::new()
    } else {
        format!(" --data-dir {data}")
    };
    // ` <flag> https://localhost:<port>` when the service `name` is not on the port the client commands
    // assume (the table's), else nothing.
    let flag = |name: &str, flag: &str| -> String {
        let port = running.addr(name).map(|a| a.port()).unwrap_or_default();
        if services::get(name).and_then(|s| s.port) == Some(port) {
            String::new()
        } else {
            format!(" {flag} https://localhost:{port}")
        }
    };
    let endpoint = flag(hazchem_gateway::SERVICE_NAME, "--endpoint");
    let ledger = flag(hazchem_ledger::SERVICE_NAME, "--ledger");
    // One line per service, then the metrics endpoint and the data directory, addresses aligned.
    let width = running
        .services
        .iter()
        .map(|(s, _)| s.name.len())
        .chain(["metrics".len(), "data".len(), "witnesses".len()])
        .max()
        .unwrap_or_default()
        + 2;
    let mut lines = String::new();
    for (service, addr) in &running.services {
        let note = banner_note(service, *addr, &flag, &exe, &data, &dir);
        lines.push_str(&format!(
            "\n  {:<width$} https://localhost:{}  ({note})",
            service.name,
            addr.port()
        ));
    }
    if !running.dev_witnesses.is_empty() {
        let ports: Vec<u16> = running
            .dev_witnesses
            .iter()
            .map(|(_, a)| a.port())
            .collect();
        let consecutive = ports.windows(2).all(|w| w[1] == w[0] + 1);
        let ports = if consecutive {
            format!("{}-{}", ports[0], ports[ports.len() - 1])
        } else {
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        lines.push_str(&format!(
            "\n  {:<width$} https://localhost:{ports}  (the nine departments' witnesses, C2SP \
             tlog-witness; keys {data}/pki/witnesses.keys)",
            "witnesses",
        ));
    }
    let metrics = running
        .metrics
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into());
    println!(
        "\nHazchem Bus is running (development mode, embedded bus).\n\
         {lines}\
         \n  {:<width$} http://{metrics}/metrics\
         \n  {:<width$} {data}\
         \n\nIn another terminal, from this directory:\
         \n  follow everything, as the fire department:\
         \n    {exe} tail --as fire{endpoint}{dir}\
         \n  publish a signed licence decision, as emergency management:\
         \n    {exe} publish --as emergency --sign{endpoint}{dir} tests/fixtures/events/licence_issued.json\
         \n  verify the whole record against the ledger's signed checkpoint, and every origin signature against the departments' registered keys:\
         \n    {exe} audit verify{ledger}{dir}\
         \n  and require that the nine departments' witnesses cosigned that checkpoint (a log showing you a fork cannot get them):\
         \n    {exe} audit verify --witnesses 9{ledger}{dir}\
         \n  prove that one event is in the record, or export an offline bundle and check it:\
         \n    {exe} audit prove <event-id>{ledger}{dir}\
         \n    {exe} audit export --out audit-bundle{ledger}{dir}\
         \n    {exe} audit verify --bundle audit-bundle --key {data}/pki/ledger.pub --key-registry {data}/pki/signing-keys.toml\
         \n\nCtrl-C stops it; everything published stays in {data}/bus.\n",
        "metrics", "data",
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Command {
        Dev(DevArgs),
        Serve(ServeArgs),
    }

    fn dev_args(args: &[&str]) -> DevArgs {
        let cli = Cli::try_parse_from(["hazchem", "dev"].into_iter().chain(args.iter().copied()))
            .unwrap();
        let Command::Dev(args) = cli.command else {
            panic!("not dev")
        };
        args
    }

    /// `hazchem serve` offers exactly the table's servers; everything else is refused.
    #[test]
    fn serve_offers_the_services_with_a_server() {
        for service in services::SERVICES {
            let parsed = Cli::try_parse_from(["hazchem", "serve", service.name]);
            match (parsed, service.port) {
                (
                    Ok(Cli {
                        command: Command::Serve(args),
                    }),
                    Some(_),
                ) => {
                    assert_eq!(args.service, service);
                }
                (Err(_), None) => {}
                (other, port) => panic!("serve {}: {other:?} (port {port:?})", service.name),
            }
        }
        assert!(Cli::try_parse_from(["hazchem", "serve", "nobody"]).is_err());
    }

    /// Every service `hazchem dev` runs is configured on its default address with the default flags, on a
    /// free port beside a gateway on another port, and on the address its flag gives.
    #[test]
    fn dev_configures_every_service_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(&dir.path().join("pki")).unwrap();
        let listens = |config: &Config| -> BTreeMap<&str, SocketAddr> {
            crate::launch::LAUNCHERS
                .iter()
                .map(|l| (l.name(), l.listen(config).unwrap()))
                .chain([(hazchem_gateway::SERVICE_NAME, config.gateway.listen)])
                .collect()
        };

        let data_dir = dir.path().to_str().unwrap();
        let config = dev_config(&dev_args(&["--data-dir", data_dir]), &pki, &[]).unwrap();
        let listen = listens(&config);
        for service in services::dev() {
            assert_eq!(
                listen.get(service.name).copied(),
                service.default_listen(),
                "{}",
                service.name
            );
        }
        assert_eq!(
            config.bus,
            BusConfig::Embedded {
                dir: dir.path().join("bus")
            }
        );
        let section = |name| config.section::<serde_json::Value>(name).unwrap();
        for (name, key) in [
            ("ledger", "store"),
            ("credit", "state"),
            ("enforcement", "store"),
            ("warning", "store"),
        ] {
            assert_eq!(
                section(name)[key].as_str().map(PathBuf::from),
                Some(dir.path().join(name)),
                "{name}"
            );
        }
        assert_eq!(
            config.checkpoint_key,
            Some(dir.path().join("pki").join("ledger.pub"))
        );

        let args = dev_args(&["--data-dir", data_dir, "--listen", "127.0.0.2:9000"]);
        let listen = listens(&dev_config(&args, &pki, &[]).unwrap());
        for service in services::dev() {
            let expected = if service.name == hazchem_gateway::SERVICE_NAME {
                "127.0.0.2:9000"
            } else {
                "127.0.0.2:0"
            };
            assert_eq!(
                listen[service.name].to_string(),
                expected,
                "{}",
                service.name
            );
        }

        let mut flags = vec!["--data-dir".to_owned(), data_dir.to_owned()];
        for (n, service) in ServiceListen::services().enumerate() {
            flags.push(format!("--{}-listen", service.name));
            flags.push(format!("127.0.0.3:{}", 9100 + n));
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let listen = listens(&dev_config(&dev_args(&flags), &pki, &[]).unwrap());
        for (n, service) in ServiceListen::services().enumerate() {
            assert_eq!(
                listen[service.name].to_string(),
                format!("127.0.0.3:{}", 9100 + n)
            );
        }
    }
}
