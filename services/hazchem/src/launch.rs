//! The services this binary can run: one [`hazchem_kit::Launch`] per service crate, listed once in
//! [`LAUNCHERS`]. Everything else (`hazchem dev`'s configuration, `hazchem serve`, the banner) is the
//! same for every one of them. The gateway, the edge every service publishes through, is started by
//! `run.rs` itself.

use std::marker::PhantomData;
use std::net::SocketAddr;

use anyhow::{Context as _, Result, anyhow};
use figment::providers::Serialized;
use futures::future::BoxFuture;
use hazchem_kit::{Dev, Launch, Opened, Shared};

use crate::config::Config;

/// A [`Launch`] with its configuration type erased, so that the launchers fit in one list.
pub trait Launcher: Sync {
    /// Its row in the service table.
    fn name(&self) -> &'static str;
    /// Its configuration section under `hazchem dev`, as a provider for the configuration.
    fn dev(&self, dev: &Dev<'_>) -> Serialized<serde_json::Value>;
    /// Where its section says it listens.
    fn listen(&self, config: &Config) -> Result<SocketAddr>;
    /// Opens it with its section of `config`.
    fn open<'a>(&'a self, config: &'a Config, shared: &'a Shared) -> BoxFuture<'a, Result<Opened>>;
}

struct Typed<L>(PhantomData<fn() -> L>);

impl<L: Launch> Launcher for Typed<L> {
    fn name(&self) -> &'static str {
        L::NAME
    }

    fn dev(&self, dev: &Dev<'_>) -> Serialized<serde_json::Value> {
        let section = serde_json::to_value(L::dev(dev)).expect("a configuration serialises");
        Serialized::default(L::NAME, section)
    }

    fn listen(&self, config: &Config) -> Result<SocketAddr> {
        Ok(L::listen(&config.section::<L::Config>(L::NAME)?))
    }

    fn open<'a>(&'a self, config: &'a Config, shared: &'a Shared) -> BoxFuture<'a, Result<Opened>> {
        Box::pin(async move {
            let section = config.section::<L::Config>(L::NAME)?;
            L::open(section, shared)
                .await
                .map_err(|e| anyhow!(e))
                .with_context(|| format!("starting the {} service", L::NAME))
        })
    }
}

/// Every service this binary runs besides the gateway: adding a service is its crate, its row in the
/// service table (`hazchem_pki::services`), and its line here.
pub const LAUNCHERS: &[&dyn Launcher] = &[
    &Typed::<hazchem_ledger::launch::Launch>(PhantomData),
    &Typed::<hazchem_credit::launch::Launch>(PhantomData),
    &Typed::<hazchem_enforcement::launch::Launch>(PhantomData),
    &Typed::<hazchem_warning::launch::Launch>(PhantomData),
];

/// The launcher of the service `name`.
pub fn launcher(name: &str) -> Option<&'static dyn Launcher> {
    LAUNCHERS.iter().copied().find(|l| l.name() == name)
}
