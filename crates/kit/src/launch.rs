//! How the `hazchem` binary runs a service: each service crate implements [`Launch`] (its configuration
//! section, how `hazchem dev` configures it, how it is opened and run), and the binary lists it once.
//! `hazchem dev` and `hazchem serve` then need no code of their own for it.
//!
//! Starting is two steps, so that a service can take part in admission before anything is served:
//! [`Launch::open`] opens the service's store and checks its configuration (a failure stops the process
//! before it serves anything) and may hand over an [`EventGuard`] for the publishing core; the returned
//! [`Opened::run`] then serves and follows the stream until the shutdown, publishing through its own
//! [`EventSink`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use hazchem_admission::Policy;
use hazchem_bus::Bus;
use hazchem_pki::DevPki;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{EventGuard, EventSink, ServerTlsFiles, SharedClock, VerifierKey};

/// A service's failure to open or to run, for the binary to report.
pub type LaunchError = Box<dyn std::error::Error + Send + Sync>;

/// What every service of a process shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The record.
    pub bus: Bus,
    /// "Now", for every rule about time.
    pub clock: SharedClock,
    /// The publish and read policy (the gateway's).
    pub policy: Policy,
    /// The ledger's key: every projection checks the stream against its signed checkpoints at start.
    pub checkpoints: Option<VerifierKey>,
}

/// What an opened service is run with.
#[derive(Debug)]
pub struct Serve {
    /// Where its gRPC server listens (bound by the binary, so the address is known before it runs).
    pub listener: TcpListener,
    /// How it publishes its own events (as `hazchem://service/<name>`).
    pub sink: EventSink,
    pub shutdown: CancellationToken,
}

/// An opened service.
pub struct Opened {
    /// A guard the publishing core asks before appending the event types it reviews.
    pub guard: Option<Arc<dyn EventGuard>>,
    /// Serves and follows the stream until the shutdown.
    pub run: Box<dyn FnOnce(Serve) -> BoxFuture<'static, Result<(), LaunchError>> + Send>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("guard", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

impl Opened {
    /// A service with no guard, run by `run`.
    pub fn new<F, Fut, E>(run: F) -> Self
    where
        F: FnOnce(Serve) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<LaunchError>,
    {
        Opened {
            guard: None,
            run: Box::new(move |serve| {
                Box::pin(async move { run(serve).await.map_err(Into::into) })
            }),
        }
    }

    /// Adds the guard the publishing core asks.
    #[must_use]
    pub fn with_guard(mut self, guard: Arc<dyn EventGuard>) -> Self {
        self.guard = Some(guard);
        self
    }
}

/// Where `hazchem dev` runs a service.
#[derive(Debug)]
pub struct Dev<'a> {
    /// Its address.
    pub listen: SocketAddr,
    /// The development PKI's server certificate and CA.
    pub tls: ServerTlsFiles,
    /// Its own state: `<data-dir>/<service>`.
    pub state: PathBuf,
    /// The data directory.
    pub data_dir: &'a Path,
    pub pki: &'a DevPki,
}

/// A service the `hazchem` binary can run. [`Launch::NAME`] is its row in the service table
/// (`hazchem_pki::services`) and its section in the configuration file.
pub trait Launch: Send + Sync + 'static {
    /// Its name in the service table.
    const NAME: &'static str;
    /// Its configuration section.
    type Config: Serialize + DeserializeOwned + Default + Clone + std::fmt::Debug + Send + Sync;

    /// Its configuration under `hazchem dev`.
    fn dev(dev: &Dev<'_>) -> Self::Config;

    /// Where it listens.
    fn listen(config: &Self::Config) -> SocketAddr;

    /// Opens it: configuration checked, store opened; nothing served yet.
    fn open(
        config: Self::Config,
        shared: &Shared,
    ) -> impl Future<Output = Result<Opened, LaunchError>> + Send;
}
