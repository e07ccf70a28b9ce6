//! `hazchem`: one binary that runs the bus and talks to it. `main` parses the command line, sets up
//! tracing, turns Ctrl-C and SIGTERM into a cancellation, and calls the command.

mod client;
mod config;
mod run;

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
    /// Generate deployment configuration from the policy (`deploy nats`: the NATS server's users,
    /// permissions and cluster configuration).
    Deploy(deploy::DeployArgs),
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
            Command::Deploy(args) => deploy::run(args),
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
        .with_writer(std::io::stderr);
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
