//! How the `hazchem` binary runs the credit service ([`hazchem_kit::Launch`]).

use std::sync::Arc;

use hazchem_kit::{Dev, LaunchError, Opened, Serve, Shared};

use crate::{Credit, CreditConfig, CreditGuard, SERVICE_NAME};

/// Credit constraint, as the binary runs it.
#[derive(Debug)]
pub struct Launch;

impl hazchem_kit::Launch for Launch {
    const NAME: &'static str = SERVICE_NAME;
    type Config = CreditConfig;

    fn dev(dev: &Dev<'_>) -> CreditConfig {
        CreditConfig {
            listen: dev.listen,
            state: dev.state.clone(),
            tls: Some(dev.tls.clone()),
            ..CreditConfig::default()
        }
    }

    fn listen(config: &CreditConfig) -> std::net::SocketAddr {
        config.listen
    }

    /// The registry is opened first: the publishing core asks its guard about every credit decision
    /// (a gateway without the credit service in its process asks one over gRPC, `credit.remote`).
    async fn open(config: CreditConfig, shared: &Shared) -> Result<Opened, LaunchError> {
        let credit = Credit::open(&config, shared.policy.clone())?
            .with_clock(shared.clock.clone())
            .with_checkpoints(shared.checkpoints.clone());
        let tls = config.server_tls()?;
        let guard = Arc::new(CreditGuard::new(credit.clone()));
        let bus = shared.bus.clone();
        Ok(Opened::new(move |serve: Serve| {
            crate::run_service(credit, bus, serve.sink, serve.listener, tls, serve.shutdown)
        })
        .with_guard(guard))
    }
}
