//! `hazchem`: one binary that runs the bus and talks to it. `main` parses the command line, sets up
//! tracing, turns Ctrl-C and SIGTERM into a cancellation, and calls the command.

mod audit;
mod bench;
mod client;
mod config;
mod credit;
mod enforcement;
mod launch;
mod run;
mod simulate;
mod warnings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hazchem_deploy as deploy;
use tokio_util::sync::CancellationToken;

/// Hazchem Bus: nine departments share hazardous-chemical lifecycle events, joint-enforcement tasks,
/// warnings and credit sanctions over one tamper-evident record.
#[derive(Debug, Parser)]
#[command(name = "hazchem", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system in this process on the embedded bus, with a development CA and one client
    /// certificate per department. No external services.
    Dev(run::DevArgs),
    /// Run one service against the configured bus (a NATS JetStream cluster in production).
    Serve(run::ServeArgs),
    /// Publish events (canonical protobuf JSON) through the gateway.
    Publish(client::PublishArgs),
    /// Follow the record: subscribe with filters and print JSON lines.
    Tail(client::TailArgs),
    /// Ask the credit service: active sanctions and binding measures (`check`), an enterprise's listings
    /// (`history`), listings by department, type and status (`list`); each as of any instant.
    Credit(credit::CreditArgs),
    /// Joint enforcement: list and show tasks, re-run a recorded draw (`redraw`), and drive tasks (`open`,
    /// `draw`, `advance`, `findings`, `rectify`, `recheck`, `penalty`, `transfer`, `answer`, `close`).
    Enforcement(enforcement::EnforcementArgs),
    /// Early warnings: list them (by level, state, department, enterprise, rule, time), show one with its
    /// history, acknowledge (`ack`) or close one addressed to you.
    Warnings(warnings::WarningsArgs),
    /// Audit the record: replay it, fetch checkpoints and proofs, verify it against the ledger's signed
    /// checkpoint trusting only its public key, export and check offline bundles.
    Audit(audit::AuditArgs),
    /// Generate deployment configuration from the policy (`deploy nats`: the NATS server's users,
    /// permissions and cluster configuration).
    Deploy(deploy::DeployArgs),
    /// Simulate a city: its nine departments publish through the gateway (each with its own
    /// certificate from the development PKI), with violations injected on request and their ground truth
    /// written to a file.
    Simulate(simulate::SimulateArgs),
    /// Benchmark the bus on this machine: ingest through the gateway against raw JetStream, latency,
    /// ledger append and verify, and the time a city's year takes. A table, and JSON.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match cli.command {
            Command::Dev(args) => run::dev(args, shutdown).await,
            Command::Serve(args) => run::serve(args, shutdown).await,
            Command::Publish(args) => client::publish(args).await,
            Command::Credit(args) => credit::run(args).await,
            Command::Enforcement(args) => enforcement::run(args).await,
            Command::Warnings(args) => warnings::run(args).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Deploy(args) => deploy::run(args),
            Command::Simulate(args) => {
                tokio::select! {
                    result = simulate::simulate(args) => result,
                    () = shutdown.cancelled() => Ok(()),
                }
            }
            Command::Bench(args) => {
                tokio::select! {
                    result = bench::bench(args) => result,
                    () = shutdown.cancelled() => Ok(()),
                }
            }
            Command::Tail(args) => {
                tokio::select! {
                    result = client::tail(args) => result,
                    () = shutdown.cancelled() => Ok(()),
                }
            }
        }
    })
}

/// Logs go to standard error; `HAZCHEM_LOG` (or `RUST_LOG`) sets the filter, `HAZCHEM_LOG_FORMAT=json`
/// switches to JSON lines for log collectors.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HAZCHEM_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,tower=warn,hyper=warn,sled=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal (and not under NO_COLOR, which an explicit `with_ansi` would
        // override): logs redirected to a file or a collector stay plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        );
    if std::env::var("HAZCHEM_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// The directory `hazchem dev` uses unless told otherwise.
fn default_data_dir() -> PathBuf {
    PathBuf::from(".hazchem")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every subcommand's arguments are consistent (unique ids and flags, valid requirements); clap
    /// otherwise reports such mistakes only when that subcommand is run.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
